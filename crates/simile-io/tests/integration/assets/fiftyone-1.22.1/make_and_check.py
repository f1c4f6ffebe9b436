"""Makes and checks the FiftyOne fixture in this folder (fiftyone 1.22.1 from PyPI).

No MongoDB is needed (none can be downloaded here): sample documents are built with
`Sample.to_mongo_dict(include_id=True)` and written with `bson.json_util.dumps` in the
`{"samples": [...]}` shape, the same calls `FiftyOneDatasetExporter` makes on documents
read from the database.

    python make_and_check.py make OUT_DIR       # needs JPEGs in /tmp/io_fo_imgs
    python make_and_check.py check EXPORT_DIR ids.json
                                                # parses a simile export with
                                                # fiftyone.core.sample.Sample.from_dict
"""
import os, json, sys
import numpy as np
from bson import json_util, ObjectId
import fiftyone.core.sample as fos
import fiftyone.core.labels as fol
import fiftyone.core.metadata as fom

mode = sys.argv[1]
if mode == "make":
    out = sys.argv[2]
    os.makedirs(os.path.join(out, "data"), exist_ok=True)
    docs = []
    ids = {}
    for i, name in enumerate(sorted(os.listdir("/tmp/io_fo_imgs"))[:3]):
        if not name.endswith(".jpg"):
            continue
        import shutil
        shutil.copy(os.path.join("/tmp/io_fo_imgs", name), os.path.join(out, "data", name))
        s = fos.Sample(filepath="data/" + name, tags=["validation"])
        s["ground_truth"] = fol.Detections(detections=[
            fol.Detection(label="circle", bounding_box=[0.1, 0.2, 0.3, 0.4], confidence=0.9, color="red"),
            fol.Detection(label="star", bounding_box=[0.5, 0.5, 0.25, 0.25], confidence=float("nan")),
        ])
        s["weather"] = fol.Classification(label="sunny")
        s["uniqueness"] = 0.1 * i
        s["embedding"] = np.array([1.0 * i, 2.0, 3.5], dtype=np.float32)
        s["metadata"] = fom.ImageMetadata(width=320, height=240, size_bytes=1234, mime_type="image/jpeg", num_channels=3)
        d = s.to_mongo_dict(include_id=True)
        d["_id"] = ObjectId()
        d["filepath"] = "data/" + name
        d["_media_type"] = "image"
        d["_rand"] = 0.5
        d["_dataset_id"] = ObjectId()
        docs.append(d)
        ids[str(d["_id"])] = [str(x["_id"]) for x in d["ground_truth"]["detections"]]
    # exactly like foo.export_collection(..., key="samples")
    with open(os.path.join(out, "samples.json"), "w") as f:
        f.write('{"samples": [')
        f.write(",".join(json_util.dumps(d) for d in docs))
        f.write("]}")
    json.dump({"version": "1.22.1", "media_type": "image", "name": "x", "sample_fields": [
        {"name": "embedding", "ftype": "fiftyone.core.fields.VectorField"}]}, open(os.path.join(out, "metadata.json"), "w"))
    json.dump(ids, open(os.path.join(out, "ids.json"), "w"))
    print(open(os.path.join(out, "samples.json")).read()[:1500])
else:
    d = sys.argv[2]
    text = open(os.path.join(d, "samples.json")).read()
    docs = json_util.loads(text)["samples"]
    ids = json.load(open(sys.argv[3]))
    for doc in docs:
        s = fos.Sample.from_dict(doc)
        sid = str(doc["_id"])
        assert sid in ids, sid
        got = [dt.id for dt in s.ground_truth.detections]
        assert got == ids[sid], (got, ids[sid])
        print(sid, s.filepath, [ (dt.label, dt.bounding_box, dt.confidence, dt.get_field("color") if dt.has_field("color") else None) for dt in s.ground_truth.detections], s["weather"].label, s["weather"].id, s["embedding"], s["uniqueness"], s.metadata.width if s.metadata else None, s.tags)
    print("FiftyOne parsed", len(docs), "samples with the same ids")

//! The photos and prompts the int8 CLIP variants are compared on (the accuracy test and the
//! `clip_compare` example): real photos from scikit-image's `skimage/data` (public domain / CC0),
//! colour and grey, PNG and JPEG, natural scenes, microscopy, astronomy and textures; prompts
//! including an empty one, HTML entities and one past the 77-token context.

/// scikit-image sample photos (file names in its `skimage/data`).
pub const PHOTOS: &[&str] = &[
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "camera.png",
    "coins.png",
    "horse.png",
    "motorcycle_left.png",
    "ihc.png",
    "moon.png",
    "brick.png",
    "grass.png",
    "gravel.png",
    "page.png",
];

/// Text prompts.
pub const PROMPTS: &[&str] = &[
    "a photo of an astronaut",
    "a cat lying on a rug",
    "a cup of coffee",
    "a rocket on the launch pad",
    "galaxies in the hubble deep field",
    "a retina scan",
    "a man with a camera",
    "coins on a table",
    "a red motorcycle",
    "a photo of a dog",
    "",
    "Ünïcödé & <b>html</b> entities &amp; “curly” quotes",
    "a very long prompt that goes on and on about a great many things well past the \
     seventy-seven token context of the text tower so that it has to be truncated at the end",
];

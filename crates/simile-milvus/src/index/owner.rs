//! Which collections simile created, and for which storage directory: a collection this backend
//! creates carries `created by simile for <storage dir>` as its description, so a doctor can
//! find collections that no run references (a compute killed after creating its collection)
//! without ever mistaking a user's or FiftyOne's collection for one of them.
use std::path::{Path, PathBuf};

use milvus::v2::prelude::{
    DescribeCollectionRequest, DropCollectionRequest, ListCollectionsRequest,
};
use simile_index::{Error, Result};

use super::MilvusIndex;

/// The start of the description of every collection simile creates.
pub const OWNER_PREFIX: &str = "created by simile for ";

/// The description that marks a collection as created by simile for `storage_dir`.
pub(super) fn owner_description(storage_dir: &Path) -> String {
    format!("{OWNER_PREFIX}{}", storage_dir.display())
}

/// The storage directory a collection description names, if simile created the collection.
pub fn owner_of(description: &str) -> Option<PathBuf> {
    description
        .strip_prefix(OWNER_PREFIX)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// A collection on the server that simile created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedCollection {
    /// The collection's name.
    pub name: String,
    /// The storage directory of the compute that created it (absolute).
    pub storage_dir: PathBuf,
}

impl MilvusIndex {
    /// Every collection of this handle's database that simile created (its description says
    /// so), with the storage directory it was created for. Others' collections are never listed.
    pub fn simile_collections(&self) -> Result<Vec<OwnedCollection>> {
        let req = ListCollectionsRequest::builder().build();
        let names: Vec<String> = self
            .request("list_collections", req, |client, req| async move {
                client.list_collections(req).await
            })?
            .collection_names()
            .to_vec();
        let mut out = Vec::new();
        for name in names {
            match self.collection_owner(&name) {
                Ok(Some(storage_dir)) => out.push(OwnedCollection { name, storage_dir }),
                Ok(None) => {}
                // Dropped between the listing and now.
                Err(Error::IndexMissing { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// The storage directory a collection was created for, if simile created it.
    /// Errors: [`Error::IndexMissing`] when there is no such collection.
    pub fn collection_owner(&self, name: &str) -> Result<Option<PathBuf>> {
        let req = DescribeCollectionRequest::builder()
            .collection_name(name.to_string())
            .build();
        let desc = self.request("describe_collection", req, |client, req| async move {
            client.describe_collection(req).await
        })?;
        let d = desc.description();
        let text = if d.get_description().is_empty() {
            d.get_schema().get_description()
        } else {
            d.get_description()
        };
        Ok(owner_of(text))
    }

    /// Drops a collection by name (already gone is fine).
    pub fn drop_named_collection(&self, name: &str) -> Result<()> {
        let req = DropCollectionRequest::builder()
            .collection_name(name.to_string())
            .build();
        match self.request("drop_collection", req, |client, req| async move {
            client.drop_collection(req).await
        }) {
            Ok(()) | Err(Error::IndexMissing { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_marker_round_trips_and_ignores_others() {
        let dir = Path::new("/home/u/.simile/indexes/3/00ab");
        assert_eq!(owner_of(&owner_description(dir)).as_deref(), Some(dir));
        assert_eq!(owner_of(""), None);
        assert_eq!(owner_of("a FiftyOne collection"), None);
        assert_eq!(owner_of(OWNER_PREFIX), None);
    }
}

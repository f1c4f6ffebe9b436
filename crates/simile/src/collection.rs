use std::ops::Deref;
use std::sync::Arc;

use simile_dataset::{Filter, LabelFilter};

use crate::context::Ctx;
use crate::{Query, Result, SimilarityIndex, SimilarityOptions, SortOptions};

/// A dataset, with the brain methods on it (`sort_by_similarity`, `list_brain_runs`, ...).
/// Dereferences to [`simile_dataset::Dataset`] for sample management (`add_samples`, `len`, ...).
#[derive(Clone, Debug)]
pub struct Dataset {
    pub(crate) inner: simile_dataset::Dataset,
    pub(crate) ctx: Arc<Ctx>,
}

impl Deref for Dataset {
    type Target = simile_dataset::Dataset;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

/// A view of a dataset (stages applied lazily), with the brain methods on it.
/// Dereferences to [`simile_dataset::View`] (`ids`, `samples`, `first`, `values`, ...).
#[derive(Clone, Debug)]
pub struct View {
    pub(crate) inner: simile_dataset::View,
    pub(crate) ctx: Arc<Ctx>,
}

impl Deref for View {
    type Target = simile_dataset::View;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl Dataset {
    pub(crate) fn new(inner: simile_dataset::Dataset, ctx: Arc<Ctx>) -> Self {
        Dataset { inner, ctx }
    }
    /// The underlying dataset-model handle.
    pub fn inner(&self) -> &simile_dataset::Dataset {
        &self.inner
    }
    /// The whole dataset as a view.
    pub fn view(&self) -> View {
        View {
            inner: self.inner.view(),
            ctx: self.ctx.clone(),
        }
    }
    /// A view made of these stages (e.g. from [`crate::parse_stages`], the JSON view
    /// description the App and the CLI share).
    pub fn view_of(&self, stages: impl IntoIterator<Item = simile_dataset::Stage>) -> View {
        stages.into_iter().fold(self.view(), |v, s| v.with_stage(s))
    }
    /// `n` random samples (see [`View::take`]).
    pub fn take(&self, n: usize, seed: Option<u64>) -> View {
        self.view().take(n, seed)
    }
    /// At most the first `n` samples.
    pub fn limit(&self, n: usize) -> View {
        self.view().limit(n)
    }
    /// All but the first `n` samples.
    pub fn skip(&self, n: usize) -> View {
        self.view().skip(n)
    }
    /// Only these samples.
    pub fn select(&self, ids: &[String]) -> View {
        self.view().select(ids)
    }
    /// All samples but these.
    pub fn exclude(&self, ids: &[String]) -> View {
        self.view().exclude(ids)
    }
    /// Samples matching the filter.
    pub fn match_field(&self, filter: Filter) -> View {
        self.view().match_field(filter)
    }
    /// Only the labels of `field` that match the filter, and only samples left with one.
    pub fn filter_labels(&self, field: &str, filter: LabelFilter) -> View {
        self.view().filter_labels(field, filter)
    }
    /// One row per label of a detections field.
    pub fn to_patches(&self, field: &str) -> PatchesView {
        self.view().to_patches(field)
    }
    /// Builds a similarity index of the whole dataset (see [`crate::compute_similarity`]).
    pub fn compute_similarity(&self, options: SimilarityOptions) -> Result<SimilarityIndex> {
        crate::compute::compute_similarity(&self.view(), options)
    }
    /// Sorts the dataset by similarity to a query (see [`View::sort_by_similarity`]).
    pub fn sort_by_similarity(
        &self,
        query: impl Into<Query>,
        options: SortOptions,
    ) -> Result<View> {
        self.view().sort_by_similarity(query, options)
    }
}

impl View {
    fn wrap(&self, inner: simile_dataset::View) -> View {
        View {
            inner,
            ctx: self.ctx.clone(),
        }
    }
    /// The underlying dataset-model view.
    pub fn inner(&self) -> &simile_dataset::View {
        &self.inner
    }
    /// The dataset this view is of.
    pub fn dataset(&self) -> Dataset {
        Dataset::new(self.inner.dataset().clone(), self.ctx.clone())
    }
    /// `n` random samples of this view; `seed` makes it reproducible.
    pub fn take(&self, n: usize, seed: Option<u64>) -> View {
        self.wrap(self.inner.take(n, seed))
    }
    /// At most the first `n` samples of this view.
    pub fn limit(&self, n: usize) -> View {
        self.wrap(self.inner.limit(n))
    }
    /// All but the first `n` samples of this view.
    pub fn skip(&self, n: usize) -> View {
        self.wrap(self.inner.skip(n))
    }
    /// Only these samples, in view order.
    pub fn select(&self, ids: &[String]) -> View {
        self.wrap(self.inner.select(ids))
    }
    /// Only these samples, in the order given.
    pub fn select_ordered(&self, ids: &[String]) -> View {
        self.wrap(self.inner.select_ordered(ids))
    }
    /// All samples of this view but these.
    pub fn exclude(&self, ids: &[String]) -> View {
        self.wrap(self.inner.exclude(ids))
    }
    /// Samples of this view matching the filter.
    pub fn match_field(&self, filter: Filter) -> View {
        self.wrap(self.inner.match_field(filter))
    }
    /// Only the labels of `field` that match the filter, and only samples left with one.
    pub fn filter_labels(&self, field: &str, filter: LabelFilter) -> View {
        self.wrap(self.inner.filter_labels(field, filter))
    }
    /// Samples with any of these tags.
    pub fn match_tags(&self, tags: &[String]) -> View {
        self.wrap(self.inner.match_tags(tags))
    }
    /// Orders the samples by a field (missing values last).
    pub fn sort_by(&self, field: &str, reverse: bool) -> View {
        self.wrap(self.inner.sort_by(field, reverse))
    }
    /// One row per label of a detections field.
    pub fn to_patches(&self, field: &str) -> PatchesView {
        PatchesView {
            inner: self.inner.to_patches(field),
            ctx: self.ctx.clone(),
        }
    }
    pub(crate) fn with_stage(&self, stage: simile_dataset::Stage) -> View {
        self.wrap(self.inner.with_stage(stage))
    }
    /// Builds a similarity index of this view's samples, registered on the dataset.
    pub fn compute_similarity(&self, options: SimilarityOptions) -> Result<SimilarityIndex> {
        crate::compute::compute_similarity(self, options)
    }
    /// Sorts this view by similarity to `query`: an id (sample or patch), several ids (their mean),
    /// a vector, several vectors (their mean), or a text prompt. Only samples of this view that
    /// are in the index are returned; query ids may lie outside the view.
    pub fn sort_by_similarity(
        &self,
        query: impl Into<Query>,
        options: SortOptions,
    ) -> Result<View> {
        crate::sort::sort_by_similarity(self, query.into(), options)
    }
}

/// One row per label of a detections field (`to_patches`), with `sort_by_similarity`.
/// Dereferences to [`simile_dataset::PatchesView`] (`patches`, `ids`, `label_ids`, ...).
#[derive(Clone, Debug)]
pub struct PatchesView {
    pub(crate) inner: simile_dataset::PatchesView,
    pub(crate) ctx: Arc<Ctx>,
}

impl Deref for PatchesView {
    type Target = simile_dataset::PatchesView;
    fn deref(&self) -> &Self::Target {
        &self.inner
    }
}

impl PatchesView {
    /// Sorts the patches by similarity to `query` (a patch id, several, a vector, or a prompt)
    /// with a patch index of this field; `dist_field` is written on the labels.
    pub fn sort_by_similarity(
        &self,
        query: impl Into<Query>,
        options: SortOptions,
    ) -> Result<PatchesView> {
        crate::sort::sort_patches(self, query.into(), options)
    }
}

/// Anything `compute_similarity` accepts: a dataset or a view.
pub trait Collection {
    /// This dataset or view as a view.
    fn to_view(&self) -> View;
}
impl Collection for Dataset {
    fn to_view(&self) -> View {
        self.view()
    }
}
impl Collection for View {
    fn to_view(&self) -> View {
        self.clone()
    }
}

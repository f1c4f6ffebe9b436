//! A column of fixed-size values (the `f32` rows, their int8 codes, the norms): owned, or read
//! in place from a memory-mapped file until the first change copies it out.

use std::sync::Arc;

/// A value that a file stores little-endian and that every bit pattern makes valid.
pub(crate) trait Le: Copy + Default + Send + Sync + 'static {
    /// Decodes one value (big-endian machines only convert).
    fn from_le(b: &[u8]) -> Self;
    /// Appends the value's little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

impl Le for f32 {
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl Le for u8 {
    fn from_le(b: &[u8]) -> Self {
        b[0]
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.push(self);
    }
}

impl Le for u16 {
    fn from_le(b: &[u8]) -> Self {
        u16::from_le_bytes([b[0], b[1]])
    }
    fn put_le(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// The little-endian bytes of `v`, borrowed where the machine is little-endian.
pub(crate) fn le_bytes<T: Le>(v: &[T]) -> std::borrow::Cow<'_, [u8]> {
    if cfg!(target_endian = "little") {
        // SAFETY: the `Le` types (f32, u16, u8) have no padding and every byte of them is
        // initialised; `u8` has alignment 1; the slice covers exactly the memory of `v`, which
        // stays borrowed for the result's life.
        std::borrow::Cow::Borrowed(unsafe {
            std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v))
        })
    } else {
        let mut out = Vec::with_capacity(std::mem::size_of_val(v));
        for x in v {
            x.put_le(&mut out);
        }
        std::borrow::Cow::Owned(out)
    }
}

/// The values: owned, or `len` of them at byte `offset` of a map.
pub(crate) struct Buf<T: Le> {
    owned: Vec<T>,
    mapped: Option<Mapped>,
    _t: std::marker::PhantomData<T>,
}

impl<T: Le> Default for Buf<T> {
    fn default() -> Self {
        Buf {
            owned: Vec::new(),
            mapped: None,
            _t: std::marker::PhantomData,
        }
    }
}

/// `len` values at byte `offset` of `map`, aligned for `T` (checked when made by
/// [`Buf::from_map`]).
struct Mapped {
    map: Arc<memmap2::Mmap>,
    offset: usize,
    len: usize,
}

impl<T: Le> Buf<T> {
    /// An owned buffer.
    pub(crate) fn owned(v: Vec<T>) -> Self {
        Buf {
            owned: v,
            ..Buf::default()
        }
    }

    /// `len` little-endian values at byte `offset` of `map`: used in place when this machine is
    /// little-endian and the address is aligned, converted into an owned vector otherwise.
    /// `offset + len · size_of::<T>()` must not exceed the map (callers check; a short map yields
    /// what fits).
    pub(crate) fn from_map(map: Arc<memmap2::Mmap>, offset: usize, len: usize) -> Self {
        let size = std::mem::size_of::<T>();
        let end = offset
            .saturating_add(len.saturating_mul(size))
            .min(map.len());
        let bytes = map.get(offset..end).unwrap_or_default();
        let aligned = (bytes.as_ptr() as usize) % std::mem::align_of::<T>() == 0;
        if cfg!(target_endian = "little") && aligned && bytes.len() == len * size {
            return Buf {
                mapped: Some(Mapped { map, offset, len }),
                ..Buf::default()
            };
        }
        Buf::owned(bytes.chunks_exact(size).map(T::from_le).collect())
    }

    /// The byte offset in the map of a mapped buffer's first value.
    pub(crate) fn mapped_offset(&self) -> Option<usize> {
        self.mapped.as_ref().map(|m| m.offset)
    }

    pub(crate) fn is_mapped(&self) -> bool {
        self.mapped.is_some()
    }

    /// For a mapped buffer whose map is longer than what it shows (a file being built): shows
    /// `len` values instead. `false` (nothing changed) when owned or when `len` does not fit.
    pub(crate) fn set_mapped_len(&mut self, len: usize) -> bool {
        let size = std::mem::size_of::<T>();
        match &mut self.mapped {
            Some(m) if m.offset.saturating_add(len.saturating_mul(size)) <= m.map.len() => {
                m.len = len;
                true
            }
            _ => false,
        }
    }

    /// The owned vector, copying the mapped values out first if needed.
    pub(crate) fn to_mut(&mut self) -> &mut Vec<T> {
        if let Some(m) = self.mapped.take() {
            self.owned = values::<T>(&m).to_vec();
        }
        &mut self.owned
    }
}

fn values<T: Le>(m: &Mapped) -> &[T] {
    let bytes = &m.map[m.offset..m.offset + m.len * std::mem::size_of::<T>()];
    // SAFETY: `from_map`/`set_mapped_len` made or kept a `Mapped` only on a little-endian machine,
    // for a range aligned for `T` of exactly `len · size_of::<T>()` bytes inside the map; every bit
    // pattern is a valid `T` (the `Le` types: f32, u16, u8); the map is read-only and lives as long
    // as `m`. (A file being built is written through its descriptor only while the store is
    // write-locked, i.e. while no slice from here is alive.)
    unsafe { std::slice::from_raw_parts(bytes.as_ptr().cast::<T>(), m.len) }
}

impl<T: Le> std::ops::Deref for Buf<T> {
    type Target = [T];

    fn deref(&self) -> &[T] {
        match &self.mapped {
            Some(m) => values::<T>(m),
            None => &self.owned,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn mapped_then_copied_out() {
        let mut f = tempfile::tempfile().unwrap();
        let vals = [1.5f32, -2.0, 3.25, 0.0];
        for v in vals {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
        // SAFETY: a private temporary file nobody else writes.
        let map = Arc::new(unsafe { memmap2::Mmap::map(&f) }.unwrap());
        let mut b = Buf::<f32>::from_map(Arc::clone(&map), 4, 2);
        assert_eq!(&*b, &vals[1..3]);
        assert!(b.is_mapped() || cfg!(target_endian = "big"));
        assert!(b.set_mapped_len(3) || !b.is_mapped());
        assert!(!b.set_mapped_len(4), "past the end of the map");
        b.to_mut().push(9.0);
        assert!(!b.is_mapped());
        assert_eq!(&*b, &[-2.0, 3.25, 0.0, 9.0]);
        // A short map yields what fits, never a panic.
        assert_eq!(Buf::<u16>::from_map(map, 14, 5).len(), 1);
    }
}

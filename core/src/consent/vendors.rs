//! Vendor id sets as encoded by TCF (bitfield or range entries), stored compactly.
//!
//! A bitfield is kept as a bitset (its size was checked against the bits actually present before
//! allocating); range entries are kept as sorted, merged inclusive ranges, so a hostile
//! `1-65535` entry costs one pair, not 65 535 ids.

use super::ConsentError;
use super::bits::BitReader;

/// A set of vendor (or provider) ids, iterated in ascending order.
#[derive(Clone, Debug, Default)]
pub struct VendorSet {
    max_id: u16,
    repr: Repr,
}

#[derive(Clone, Debug)]
enum Repr {
    /// Bit `(id - 1) % 64` of word `(id - 1) / 64` is set when `id` is in the set.
    Bits(Vec<u64>),
    /// Sorted, non-overlapping, non-adjacent inclusive ranges.
    Ranges(Vec<(u16, u16)>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Ranges(Vec::new())
    }
}

impl PartialEq for VendorSet {
    fn eq(&self, other: &Self) -> bool {
        self.iter().eq(other.iter())
    }
}

impl Eq for VendorSet {}

impl VendorSet {
    /// The `MaxVendorId` the encoder declared (0 for an empty set).
    #[must_use]
    pub fn max_id(&self) -> u16 {
        self.max_id
    }

    /// Whether `id` is in the set.
    #[must_use]
    pub fn contains(&self, id: u16) -> bool {
        if id == 0 {
            return false;
        }
        match &self.repr {
            Repr::Bits(words) => {
                let i = usize::from(id - 1);
                words.get(i / 64).is_some_and(|w| w >> (i % 64) & 1 == 1)
            }
            Repr::Ranges(ranges) => {
                let at = ranges.partition_point(|&(_, end)| end < id);
                ranges.get(at).is_some_and(|&(start, _)| start <= id)
            }
        }
    }

    /// Number of ids in the set.
    #[must_use]
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Bits(words) => words.iter().map(|w| w.count_ones() as usize).sum(),
            Repr::Ranges(ranges) => ranges.iter().map(|&(s, e)| usize::from(e - s) + 1).sum(),
        }
    }

    /// Whether the set is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        match &self.repr {
            Repr::Bits(words) => words.iter().all(|&w| w == 0),
            Repr::Ranges(ranges) => ranges.is_empty(),
        }
    }

    /// The ids in ascending order.
    #[must_use]
    pub fn iter(&self) -> VendorIter<'_> {
        VendorIter {
            set: self,
            index: 0,
            word: match &self.repr {
                Repr::Bits(words) => words.first().copied().unwrap_or(0),
                Repr::Ranges(_) => 0,
            },
            next_in_range: None,
        }
    }

    /// The ids as a sorted vector.
    #[must_use]
    pub fn to_vec(&self) -> Vec<u16> {
        self.iter().collect()
    }

    /// Builds a set from ids in any order (used by tests and the Additional Consent decoder).
    #[must_use]
    pub fn from_ids(ids: &[u16]) -> Self {
        let mut ranges: Vec<(u16, u16)> =
            ids.iter().filter(|&&i| i != 0).map(|&i| (i, i)).collect();
        normalize(&mut ranges);
        let max_id = ranges.last().map_or(0, |&(_, e)| e);
        VendorSet {
            max_id,
            repr: Repr::Ranges(ranges),
        }
    }
}

impl<'a> IntoIterator for &'a VendorSet {
    type Item = u16;
    type IntoIter = VendorIter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Ascending iterator over a [`VendorSet`].
#[derive(Debug)]
pub struct VendorIter<'a> {
    set: &'a VendorSet,
    index: usize,
    word: u64,
    next_in_range: Option<(u16, u16)>,
}

impl Iterator for VendorIter<'_> {
    type Item = u16;

    fn next(&mut self) -> Option<u16> {
        match &self.set.repr {
            Repr::Bits(words) => loop {
                if self.word != 0 {
                    let bit = self.word.trailing_zeros() as usize;
                    self.word &= self.word - 1;
                    // Ids are 1-based; a bitset never holds more than 65 535 bits.
                    return u16::try_from(self.index * 64 + bit + 1).ok();
                }
                self.index += 1;
                self.word = *words.get(self.index)?;
            },
            Repr::Ranges(ranges) => {
                if let Some((cur, end)) = self.next_in_range {
                    self.next_in_range = successor(cur, end);
                    return Some(cur);
                }
                let &(start, end) = ranges.get(self.index)?;
                self.index += 1;
                self.next_in_range = successor(start, end);
                Some(start)
            }
        }
    }
}

/// The next id of an inclusive range after `cur`, if any (no overflow at 65 535).
fn successor(cur: u16, end: u16) -> Option<(u16, u16)> {
    if cur < end {
        Some((cur + 1, end))
    } else {
        None
    }
}

/// Sorts and merges overlapping or adjacent ranges in place.
fn normalize(ranges: &mut Vec<(u16, u16)>) {
    ranges.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
    for &(s, e) in ranges.iter() {
        match merged.last_mut() {
            Some(last) if u32::from(s) <= u32::from(last.1) + 1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    *ranges = merged;
}

/// Reads a TCF vendor section: `MaxVendorId(16) IsRangeEncoding(1)` then a bitfield of
/// `MaxVendorId` bits or range entries. Range entries beyond `MaxVendorId` are rejected.
pub(crate) fn read_vendor_section(
    r: &mut BitReader<'_>,
    field: &'static str,
) -> Result<VendorSet, ConsentError> {
    let max_id = r.read(16, field)? as u16;
    if r.read_bool(field)? {
        let ranges = read_range_entries(r, field, Some(max_id))?;
        Ok(VendorSet {
            max_id,
            repr: Repr::Ranges(ranges),
        })
    } else {
        read_bitfield(r, field, max_id)
    }
}

/// Reads a bitfield of `max_id` bits (vendor 1 first) after checking the bits are present.
fn read_bitfield(
    r: &mut BitReader<'_>,
    field: &'static str,
    max_id: u16,
) -> Result<VendorSet, ConsentError> {
    let n = usize::from(max_id);
    if r.remaining() < n {
        // Checked before allocating: a claimed 65 535-bit field in a 10-byte body fails here.
        return Err(ConsentError::Truncated { field });
    }
    let mut words = vec![0u64; n.div_ceil(64)];
    let mut done = 0;
    while done < n {
        let take = (n - done).min(32);
        let chunk = r.read(take as u32, field)? as u32;
        // First bit read is the lowest id: left-align then reverse so it lands in bit 0.
        let lsb_first = u64::from((chunk << (32 - take)).reverse_bits());
        words[done / 64] |= lsb_first << (done % 64);
        done += take;
    }
    Ok(VendorSet {
        max_id,
        repr: Repr::Bits(words),
    })
}

/// Reads `NumEntries(12)` range entries (`IsARange(1) Start(16) [End(16)]`).
pub(crate) fn read_range_entries(
    r: &mut BitReader<'_>,
    field: &'static str,
    max_id: Option<u16>,
) -> Result<Vec<(u16, u16)>, ConsentError> {
    let count = r.read(12, field)? as usize;
    // Each entry takes at least 17 bits: never reserve more than the data can hold.
    let mut ranges = Vec::with_capacity(count.min(r.remaining() / 17));
    let mut sorted = true;
    for _ in 0..count {
        let is_range = r.read_bool(field)?;
        let start = r.read(16, field)? as u16;
        let end = if is_range {
            r.read(16, field)? as u16
        } else {
            start
        };
        if start == 0 || start > end {
            return Err(ConsentError::InvalidRange { field, start, end });
        }
        if let Some(max) = max_id
            && end > max
        {
            return Err(ConsentError::RangeBeyondMax { field, end, max });
        }
        if let Some(&(_, prev_end)) = ranges.last() {
            sorted &= u32::from(start) > u32::from(prev_end) + 1;
        }
        ranges.push((start, end));
    }
    if !sorted {
        normalize(&mut ranges);
    }
    Ok(ranges)
}

/// Wraps range entries read by [`read_range_entries`] as a set.
pub(crate) fn set_from_ranges(ranges: Vec<(u16, u16)>) -> VendorSet {
    let max_id = ranges.last().map_or(0, |&(_, e)| e);
    VendorSet {
        max_id,
        repr: Repr::Ranges(ranges),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_answer_membership() {
        let set = VendorSet::from_ids(&[5, 3, 4, 10, 4, 0]);
        assert_eq!(set.to_vec(), vec![3, 4, 5, 10]);
        assert!(set.contains(4) && !set.contains(6) && !set.contains(0));
        assert_eq!(set.len(), 4);
    }
}

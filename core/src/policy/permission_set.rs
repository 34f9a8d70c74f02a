//! Permissions as bits: the currency every feature and provider reads.
//!
//! A [`PermissionId`] is an index into one policy's vocabulary, so ids from two different policies
//! must never be mixed. This module decides nothing about *whether* a permission is held; it only
//! makes holding one cheap to represent, copy and test on the hot path.

use std::fmt;

/// The most permissions a policy may define: one bit each in a [`PermissionSet`].
pub const MAX_PERMISSIONS: usize = 64;

/// One permission of a policy's vocabulary: its index in `permissions.yaml`'s `permissions` map.
///
/// Obtain one with [`Policy::permission_id`](super::Policy::permission_id); turn it back into a
/// name with [`Policy::permission_name`](super::Policy::permission_name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PermissionId(u8);

impl PermissionId {
    /// The id at `index`, or `None` when `index` is not below [`MAX_PERMISSIONS`].
    #[must_use]
    pub const fn new(index: usize) -> Option<Self> {
        if index < MAX_PERMISSIONS {
            // Lossless: index < 64.
            Some(Self(index as u8))
        } else {
            None
        }
    }

    /// The position of this permission in the policy's vocabulary (0-based).
    #[must_use]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    const fn bit(self) -> u64 {
        1 << self.0
    }
}

/// A set of permissions of one policy, as a 64-bit bitset. `Copy`, allocation-free.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct PermissionSet(u64);

impl PermissionSet {
    /// The empty set.
    pub const EMPTY: Self = Self(0);

    /// The empty set.
    #[must_use]
    pub const fn new() -> Self {
        Self::EMPTY
    }

    /// The set whose members are the set bits of `bits` (bit `n` = permission index `n`).
    #[must_use]
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    /// The raw bits (bit `n` = permission index `n`).
    #[must_use]
    pub const fn bits(self) -> u64 {
        self.0
    }

    /// The set of the first `count` permissions (every permission of a vocabulary of that size).
    #[must_use]
    pub const fn first(count: usize) -> Self {
        if count >= MAX_PERMISSIONS {
            Self(u64::MAX)
        } else {
            Self((1 << count) - 1)
        }
    }

    /// Whether `id` is in the set.
    #[must_use]
    pub const fn contains(self, id: PermissionId) -> bool {
        self.0 & id.bit() != 0
    }

    /// Whether every member of `other` is in the set (true when `other` is empty).
    #[must_use]
    pub const fn contains_all(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds `id`; returns whether it was newly added.
    pub fn insert(&mut self, id: PermissionId) -> bool {
        let added = !self.contains(id);
        self.0 |= id.bit();
        added
    }

    /// Removes `id`; returns whether it was present.
    pub fn remove(&mut self, id: PermissionId) -> bool {
        let present = self.contains(id);
        self.0 &= !id.bit();
        present
    }

    /// Whether the set is empty.
    #[must_use]
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The number of permissions in the set.
    #[must_use]
    pub const fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Members of either set.
    #[must_use]
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Members of both sets.
    #[must_use]
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Members of `self` that are not in `other`.
    #[must_use]
    pub const fn difference(self, other: Self) -> Self {
        Self(self.0 & !other.0)
    }

    /// The members in vocabulary order.
    #[must_use]
    pub const fn iter(self) -> PermissionSetIter {
        PermissionSetIter(self.0)
    }
}

impl fmt::Debug for PermissionSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set()
            .entries(self.iter().map(PermissionId::index))
            .finish()
    }
}

impl FromIterator<PermissionId> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = PermissionId>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        for id in iter {
            set.insert(id);
        }
        set
    }
}

impl Extend<PermissionId> for PermissionSet {
    fn extend<I: IntoIterator<Item = PermissionId>>(&mut self, iter: I) {
        for id in iter {
            self.insert(id);
        }
    }
}

impl IntoIterator for PermissionSet {
    type Item = PermissionId;
    type IntoIter = PermissionSetIter;

    fn into_iter(self) -> PermissionSetIter {
        self.iter()
    }
}

/// Iterator over a [`PermissionSet`]'s members in vocabulary order.
#[derive(Clone, Debug)]
pub struct PermissionSetIter(u64);

impl Iterator for PermissionSetIter {
    type Item = PermissionId;

    fn next(&mut self) -> Option<PermissionId> {
        if self.0 == 0 {
            return None;
        }
        // Lossless: trailing_zeros of a non-zero u64 is below 64.
        let index = self.0.trailing_zeros() as u8;
        self.0 &= self.0 - 1;
        Some(PermissionId(index))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let len = self.0.count_ones() as usize;
        (len, Some(len))
    }
}

impl ExactSizeIterator for PermissionSetIter {}

//! The bitset every feature reads.

use gatehouse_core::policy::{MAX_PERMISSIONS, PermissionId, PermissionSet};

fn id(index: usize) -> PermissionId {
    PermissionId::new(index).expect("index below 64")
}

#[test]
fn insert_remove_contains_and_len() {
    let mut set = PermissionSet::new();
    assert!(set.is_empty());
    assert!(set.insert(id(0)));
    assert!(!set.insert(id(0)), "already present");
    assert!(set.insert(id(63)));
    assert_eq!(set.len(), 2);
    assert!(set.contains(id(63)));
    assert!(!set.contains(id(1)));
    assert!(set.remove(id(0)));
    assert!(!set.remove(id(0)));
    assert_eq!(set.iter().collect::<Vec<_>>(), [id(63)]);
}

#[test]
fn contains_all_and_set_algebra() {
    let ab: PermissionSet = [id(0), id(1)].into_iter().collect();
    let b: PermissionSet = [id(1)].into_iter().collect();
    assert!(ab.contains_all(b));
    assert!(!b.contains_all(ab));
    assert!(b.contains_all(PermissionSet::EMPTY));
    assert_eq!(ab.difference(b).iter().collect::<Vec<_>>(), [id(0)]);
    assert_eq!(ab.intersection(b), b);
    assert_eq!(b.union(ab), ab);
}

#[test]
fn iterates_in_index_order_and_ids_stop_at_64() {
    let set: PermissionSet = [id(40), id(3), id(17)].into_iter().collect();
    assert_eq!(
        set.iter().map(PermissionId::index).collect::<Vec<_>>(),
        [3, 17, 40]
    );
    assert_eq!(set.iter().len(), 3);
    assert_eq!(PermissionSet::first(MAX_PERMISSIONS).len(), 64);
    assert_eq!(PermissionSet::first(13).len(), 13);
    assert!(PermissionId::new(64).is_none());
}

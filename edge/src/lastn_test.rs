use super::*;

fn select(n: usize, order: &[u32], pinned: &[u32], candidates: &[u32]) -> Vec<u32> {
    let mut out = vec![99, 98]; // stale content is cleared
    select_last_n(n, order, pinned, candidates, &mut out);
    out
}

fn changes(prev: &[u32], next: &[u32]) -> (Vec<u32>, Vec<u32>) {
    let (a, r) = diff(prev, next);
    (a.collect(), r.collect())
}

#[test]
fn n_of_four_publishers_follows_the_speaker_order() {
    let candidates = [1, 2, 3, 4];
    assert_eq!(select(2, &[], &[], &candidates), vec![1, 2], "join order");
    assert_eq!(select(2, &[3, 1, 4, 2], &[], &candidates), vec![3, 1]);
    assert_eq!(select(2, &[4, 3, 1, 2], &[], &candidates), vec![4, 3]);
    // A speaker order that knows only some keys is filled up by join order.
    assert_eq!(select(3, &[4], &[], &candidates), vec![4, 1, 2]);
}

#[test]
fn non_candidates_are_ignored_everywhere() {
    // 0 is the subscriber itself (in the speaker order, not a candidate),
    // 7 has left (still pinned).
    let candidates = [1, 2, 3];
    assert_eq!(select(2, &[0, 3, 2, 1], &[7], &candidates), vec![3, 2]);
}

#[test]
fn pinned_are_always_kept_first() {
    let candidates = [1, 2, 3, 4];
    assert_eq!(select(2, &[3, 4, 1, 2], &[2], &candidates), vec![2, 3]);
    assert_eq!(select(2, &[2, 3, 4, 1], &[2], &candidates), vec![2, 3]);
    // More pins than slots: the first n pins win.
    assert_eq!(select(2, &[1], &[4, 3, 2], &candidates), vec![4, 3]);
    // Duplicates are taken once.
    assert_eq!(select(4, &[2, 2], &[2, 2], &[1, 2, 2]), vec![2, 1]);
}

#[test]
fn n_zero_and_n_at_least_candidates() {
    assert!(select(0, &[1, 2], &[1], &[1, 2]).is_empty());
    assert!(select(5, &[1, 2], &[1], &[]).is_empty());
    assert_eq!(select(4, &[3], &[], &[1, 2, 3, 4]), vec![3, 1, 2, 4]);
    assert_eq!(select(10, &[3], &[2], &[1, 2, 3]), vec![2, 3, 1]);
}

#[test]
fn audio_is_limited_only_in_large_conferences() {
    let cfg = LastNConfig::default();
    let order = [5, 4, 3, 2, 1];
    assert!(audio_forwarded(&cfg, 20, &order, 1), "20 is not over 20");
    assert!(audio_forwarded(&cfg, 21, &order, 5));
    assert!(audio_forwarded(&cfg, 21, &order, 3));
    assert!(!audio_forwarded(&cfg, 21, &order, 2));
    assert!(!audio_forwarded(&cfg, 21, &order, 42), "unknown key");
    let none = LastNConfig {
        audio_top: 0,
        ..cfg
    };
    assert!(!audio_forwarded(&none, 21, &order, 5));
}

#[test]
fn diff_reports_added_and_removed() {
    assert_eq!(changes(&[1, 2, 3], &[3, 4, 1]), (vec![4], vec![2]));
    assert_eq!(changes(&[], &[1, 2]), (vec![1, 2], vec![]));
    assert_eq!(changes(&[1, 2], &[]), (vec![], vec![1, 2]));
    assert_eq!(changes(&[1, 2], &[2, 1]), (vec![], vec![]), "order only");
}

#[test]
fn last_n_state_reports_changes_as_speakers_change() {
    let mut s = LastN::new();
    let candidates = [1, 2, 3, 4];
    let (a, r) = s.update(2, &[], &[], &candidates);
    assert_eq!(
        (a.collect::<Vec<_>>(), r.collect::<Vec<_>>()),
        (vec![1, 2], vec![])
    );
    let (a, r) = s.update(2, &[4, 1], &[], &candidates);
    assert_eq!(
        (a.collect::<Vec<_>>(), r.collect::<Vec<_>>()),
        (vec![4], vec![2])
    );
    assert_eq!(s.current(), &[4, 1]);
    let (a, r) = s.update(2, &[1, 4], &[], &candidates);
    assert_eq!(a.count() + r.count(), 0, "reordering within the selection");
    // 4 leaves.
    let (a, r) = s.update(2, &[1, 4], &[], &[1, 2, 3]);
    assert_eq!(
        (a.collect::<Vec<_>>(), r.collect::<Vec<_>>()),
        (vec![2], vec![4])
    );
}

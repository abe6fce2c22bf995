//! Pure planning: cutting a folder's messages into slices, and ordering tasks so that
//! workers spread over mailboxes instead of all hitting one.

use mailhaul_proto::{Uid, UidRange};

/// Cuts the messages still to copy (UID, size; ascending) into UID ranges of at most
/// `max_messages` messages and about `max_bytes` bytes (a single larger message gets a
/// slice of its own). Ranges are contiguous in UID order and do not overlap.
pub fn slices(todo: &[(Uid, u32)], max_messages: u32, max_bytes: u64) -> Vec<UidRange> {
    let mut out = Vec::new();
    let mut start: Option<Uid> = None;
    let mut last = Uid(0);
    let (mut count, mut bytes) = (0u32, 0u64);
    for &(uid, size) in todo {
        if let Some(s) = start
            && (count >= max_messages || bytes + u64::from(size) > max_bytes)
        {
            out.push(UidRange { first: s, last });
            start = None;
        }
        if start.is_none() {
            start = Some(uid);
            count = 0;
            bytes = 0;
        }
        count += 1;
        bytes += u64::from(size);
        last = uid;
    }
    if let Some(s) = start {
        out.push(UidRange { first: s, last });
    }
    out
}

/// The UIDs of `todo` (ascending) that fall in each of `ranges`, as IMAP sequence sets:
/// what each slice's task is planned to copy.
pub fn planned_sets(todo: &[(Uid, u32)], ranges: &[UidRange]) -> Vec<String> {
    ranges
        .iter()
        .map(|r| {
            let lo = todo.partition_point(|(u, _)| *u < r.first);
            let hi = todo.partition_point(|(u, _)| *u <= r.last);
            let uids: Vec<Uid> = todo[lo..hi].iter().map(|(u, _)| *u).collect();
            mailhaul_proto::ids::uid_set(&uids)
        })
        .collect()
}

/// Round-robin across lists: the first item of each, then the second of each, ...
pub fn interleave<T>(lists: Vec<Vec<T>>) -> Vec<T> {
    let total = lists.iter().map(Vec::len).sum();
    let mut iters: Vec<_> = lists.into_iter().map(Vec::into_iter).collect();
    let mut out = Vec::with_capacity(total);
    while out.len() < total {
        for it in &mut iters {
            if let Some(x) = it.next() {
                out.push(x);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn todo(v: &[(u32, u32)]) -> Vec<(Uid, u32)> {
        v.iter().map(|&(u, s)| (Uid(u), s)).collect()
    }

    fn ranges(r: &[UidRange]) -> Vec<(u32, u32)> {
        r.iter().map(|r| (r.first.0, r.last.0)).collect()
    }

    #[test]
    fn slices_by_count_and_bytes() {
        type Case<'a> = (&'a [(u32, u32)], u32, u64, &'a [(u32, u32)]);
        let cases: &[Case<'_>] = &[
            (&[], 10, 100, &[]),
            (&[(1, 1), (2, 1), (3, 1)], 10, 100, &[(1, 3)]),
            (
                &[(1, 1), (2, 1), (3, 1), (7, 1), (9, 1)],
                2,
                100,
                &[(1, 2), (3, 7), (9, 9)],
            ),
            (&[(1, 60), (2, 60), (3, 10)], 10, 100, &[(1, 1), (2, 3)]),
            (&[(1, 500), (2, 1)], 10, 100, &[(1, 1), (2, 2)]),
        ];
        for (input, max_m, max_b, want) in cases {
            assert_eq!(
                ranges(&slices(&todo(input), *max_m, *max_b)),
                want.to_vec(),
                "{input:?}"
            );
        }
    }

    #[test]
    fn every_uid_falls_in_exactly_one_slice() {
        let input: Vec<(Uid, u32)> = (1..=1000)
            .filter(|u| u % 7 != 0)
            .map(|u| (Uid(u), (u * 37) % 5000))
            .collect();
        let s = slices(&input, 50, 40_000);
        for (uid, _) in &input {
            assert_eq!(s.iter().filter(|r| r.contains(*uid)).count(), 1, "{uid}");
        }
    }

    #[test]
    fn planned_sets_follow_the_slices() {
        let input = todo(&[(1, 1), (2, 1), (3, 1), (7, 1), (9, 1)]);
        let s = slices(&input, 2, 100);
        assert_eq!(planned_sets(&input, &s), ["1:2", "3,7", "9"]);
    }

    #[test]
    fn interleaves_round_robin() {
        let out = interleave(vec![
            vec!["a1", "a2", "a3"],
            vec![],
            vec!["b1"],
            vec!["c1", "c2"],
        ]);
        assert_eq!(out, ["a1", "b1", "c1", "a2", "c2", "a3"]);
    }
}

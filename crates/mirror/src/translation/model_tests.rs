//! The recorder and the index together against a model: a writer copies a
//! source log with holes (markers, aborted records, compaction), commits
//! after writing the map, crashes and restarts from its last commit, and
//! the map is read back. Every position must translate to a destination
//! offset from which a reader gets every later record in order, and
//! exactly `repeated` records more.

use std::ops::Range;

use super::{MapRecord, MapRecorder, OffsetIndex};

/// xorshift64*: deterministic per seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// Stretches of consecutive copied offsets in `range`.
fn segments(copied: &[bool], range: Range<i64>) -> Vec<Range<i64>> {
    let mut out: Vec<Range<i64>> = Vec::new();
    for o in range {
        if copied[o as usize] {
            match out.last_mut() {
                Some(last) if last.end == o => last.end = o + 1,
                _ => out.push(o..o + 1),
            }
        }
    }
    out
}

/// Runs one seed: returns the map records, the destination log (the
/// source offset of each record) and which offsets are copied.
fn run(seed: u64) -> (Vec<MapRecord>, Vec<i64>, Vec<bool>, i64) {
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let n = 50 + rng.below(400) as i64;
    let hole = rng.below(40);
    let copied: Vec<bool> = (0..n).map(|_| !rng.chance(hole)).collect();
    let mut map: Vec<MapRecord> = Vec::new();
    let mut destination: Vec<i64> = Vec::new();
    let mut committed = 0i64;
    let mut session = 0i64;
    let mut recorder = MapRecorder::new(session, 0);
    let mut position = 0i64;
    let mut steps = 0;
    while committed < n {
        steps += 1;
        assert!(steps < 100_000, "seed {seed}: no progress");
        if position < n {
            let k = 1 + rng.below(20) as i64;
            let batch = position..(position + k).min(n);
            let segs = segments(&copied, batch.clone());
            if !segs.is_empty() {
                let base = destination.len() as i64;
                for s in &segs {
                    destination.extend(s.clone());
                }
                recorder.acknowledged(&segs, Some(base));
            }
            position = batch.end;
        }
        if rng.chance(25) || position == n {
            // A commit: the map first; an append that fails stops it.
            let commit_to = position;
            if let Some(flush) = recorder.flush("t", 0, commit_to, rng.chance(5)) {
                if rng.chance(10) {
                    continue;
                }
                map.extend(flush.records.clone());
                recorder.written(&flush);
            }
            if rng.chance(10) {
                // Killed between the map and the commit.
            } else {
                committed = commit_to;
            }
        }
        if rng.chance(8) {
            // kill -9: copied but uncommitted records stay on the
            // destination; the next session starts at the commit.
            session += 1;
            recorder = MapRecorder::new(session, committed);
            position = committed;
        }
    }
    (map, destination, copied, n)
}

#[test]
fn every_position_translates_to_where_a_reader_gets_every_later_record() {
    let mut repeated_seen = 0;
    for seed in 0..600u64 {
        let (map, destination, copied, n) = run(seed);
        let mut index = OffsetIndex::new();
        for r in map {
            index.apply(r);
        }
        for o in 0..=n {
            let t = index
                .translate("t", 0, o)
                .unwrap_or_else(|e| panic!("seed {seed}, offset {o}: {e}"));
            let wanted: Vec<i64> = (o..n).filter(|&x| copied[x as usize]).collect();
            let x = usize::try_from(t.destination_offset).unwrap();
            assert!(x <= destination.len(), "seed {seed}, offset {o}: {t:?}");
            let read = &destination[x..];
            if let Some(first) = wanted.first() {
                assert_eq!(read.first(), Some(first), "seed {seed}, offset {o}: {t}");
            }
            assert_eq!(
                read.len() as i64,
                wanted.len() as i64 + t.repeated,
                "seed {seed}, offset {o}: {t}"
            );
            assert!(read.iter().all(|&s| s >= o), "seed {seed}, offset {o}: {t}");
            let mut distinct = read.to_vec();
            distinct.sort_unstable();
            distinct.dedup();
            assert_eq!(
                distinct, wanted,
                "seed {seed}, offset {o}: every later record, once or more"
            );
            if t.repeated == 0 {
                assert_eq!(read, wanted.as_slice(), "seed {seed}, offset {o}");
            } else {
                repeated_seen += 1;
            }
        }
    }
    assert!(repeated_seen > 0, "no seed wrote a stretch twice");
}

#[test]
fn the_map_never_lags_a_commit() {
    // Whatever the writer committed, the map read back accounts for it.
    for seed in 0..500u64 {
        let (map, _, _, n) = run(seed);
        let mut index = OffsetIndex::new();
        for r in map {
            index.apply(r);
        }
        assert_eq!(index.complete_to("t", 0), Some(n), "seed {seed}");
    }
}

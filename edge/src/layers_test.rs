use std::collections::HashMap;

use super::*;

fn layer(height: u16, kbps: u64) -> LayerInfo {
    LayerInfo {
        height,
        bitrate_bps: kbps * 1000,
        active: true,
    }
}

fn off(l: LayerInfo) -> LayerInfo {
    LayerInfo { active: false, ..l }
}

/// The usual three: 180p, 360p, 720p.
fn three() -> [LayerInfo; 3] {
    [layer(180, 150), layer(360, 500), layer(720, 1500)]
}

/// Deterministic pseudo-random numbers (a 64-bit LCG, high bits).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as u32
    }

    fn below(&mut self, n: u32) -> u32 {
        self.next() % n
    }
}

#[test]
fn pick_by_tile_height() {
    let l = three();
    assert_eq!(pick_layer(&l, None, None), Some(2), "no limit: the top");
    assert_eq!(pick_layer(&l, Some(0), None), Some(2), "0 = no limit");
    assert_eq!(pick_layer(&l, Some(100), None), Some(0));
    assert_eq!(
        pick_layer(&l, Some(180), None),
        Some(0),
        "exactly tall enough"
    );
    assert_eq!(pick_layer(&l, Some(181), None), Some(1), "never too small");
    assert_eq!(pick_layer(&l, Some(400), None), Some(2));
    assert_eq!(
        pick_layer(&l, Some(1080), None),
        Some(2),
        "tile above all layers"
    );
}

#[test]
fn pick_by_budget() {
    let l = three();
    assert_eq!(pick_layer(&l, None, Some(2_000_000)), Some(2));
    assert_eq!(pick_layer(&l, None, Some(1_499_999)), Some(1));
    assert_eq!(pick_layer(&l, None, Some(500_000)), Some(1));
    assert_eq!(pick_layer(&l, None, Some(200_000)), Some(0));
    assert_eq!(
        pick_layer(&l, None, Some(10_000)),
        Some(0),
        "nothing fits: the lowest"
    );
    // Tile and budget together: the smaller answer.
    assert_eq!(pick_layer(&l, Some(360), Some(2_000_000)), Some(1));
    assert_eq!(pick_layer(&l, Some(720), Some(600_000)), Some(1));
}

#[test]
fn pick_with_inactive_and_unknown_layers() {
    let [q, h, f] = three();
    assert_eq!(pick_layer(&[q, h, off(f)], None, None), Some(1));
    assert_eq!(
        pick_layer(&[off(q), h, f], Some(100), None),
        Some(1),
        "lowest active"
    );
    assert_eq!(pick_layer(&[off(q), h, f], None, Some(1)), Some(1));
    assert_eq!(pick_layer(&[off(q), off(h), off(f)], None, None), None);
    assert_eq!(pick_layer(&[], Some(360), Some(1)), None);
    // The layer that would fill the tile is off: the next active one up caps.
    assert_eq!(pick_layer(&[q, off(h), f], Some(300), None), Some(2));
    // Unknown heights: position decides; known heights still cap.
    let unknown = [layer(0, 150), layer(0, 500), layer(720, 1500)];
    assert_eq!(pick_layer(&unknown, Some(360), None), Some(2));
    assert_eq!(
        pick_layer(&[layer(0, 150), layer(0, 500)], Some(360), None),
        Some(1)
    );
    // Unmeasured bitrate does not fit a budget, but counts with none.
    let fresh = [layer(180, 150), layer(360, 0)];
    assert_eq!(pick_layer(&fresh, None, Some(10_000_000)), Some(0));
    assert_eq!(pick_layer(&fresh, None, None), Some(1));
    // Eight layers are fine.
    let eight: Vec<LayerInfo> = (1..=8)
        .map(|i| layer(i * 100, u64::from(i) * 100))
        .collect();
    assert_eq!(pick_layer(&eight, Some(450), Some(450_000)), Some(3));
}

#[test]
fn switch_waits_for_a_keyframe_of_the_target() {
    let mut s = LayerSwitch::new();
    assert_eq!(s.accept(0, true), Verdict::Drop, "nothing wanted yet");
    assert_eq!(s.set_target(Some(0)), Some(KeyframeWanted(0)));
    assert_eq!(s.set_target(Some(0)), None, "already requested");
    assert_eq!(s.pending(), Some(0));
    assert_eq!(s.accept(0, false), Verdict::Drop, "not decodable yet");
    assert_eq!(s.accept(1, true), Verdict::Drop, "another layer");
    assert_eq!(s.accept(0, true), Verdict::SwitchAndForward);
    assert_eq!(
        (s.current(), s.target(), s.pending()),
        (Some(0), Some(0), None)
    );
    assert_eq!(s.accept(0, false), Verdict::Forward);
    assert_eq!(s.accept(0, true), Verdict::Forward);
    assert_eq!(s.accept(2, false), Verdict::Drop);
}

#[test]
fn switch_up_and_down() {
    let mut s = LayerSwitch::new();
    s.set_target(Some(0));
    s.accept(0, true);

    // Up: layer 0 keeps flowing until layer 2's keyframe.
    assert_eq!(s.set_target(Some(2)), Some(KeyframeWanted(2)));
    assert_eq!(s.accept(2, false), Verdict::Drop);
    assert_eq!(s.accept(0, false), Verdict::Forward);
    assert_eq!(s.accept(1, true), Verdict::Drop, "not the target");
    assert_eq!(s.accept(2, true), Verdict::SwitchAndForward);
    assert_eq!(s.accept(0, false), Verdict::Drop, "the old layer is cut");
    assert_eq!(s.accept(2, false), Verdict::Forward);

    // Down: also at a keyframe of the lower layer.
    assert_eq!(s.set_target(Some(1)), Some(KeyframeWanted(1)));
    assert_eq!(s.accept(1, false), Verdict::Drop);
    assert_eq!(s.accept(2, false), Verdict::Forward);
    assert_eq!(s.accept(1, true), Verdict::SwitchAndForward);
    assert_eq!(s.current(), Some(1));
}

#[test]
fn switch_cancelled_and_paused() {
    let mut s = LayerSwitch::new();
    s.set_target(Some(1));
    s.accept(1, true);
    assert_eq!(s.set_target(Some(2)), Some(KeyframeWanted(2)));
    assert_eq!(
        s.set_target(Some(1)),
        None,
        "back to the current: cancelled"
    );
    assert_eq!(s.pending(), None);
    assert_eq!(s.accept(2, true), Verdict::Drop);
    assert_eq!(s.accept(1, false), Verdict::Forward);

    // Pause stops at once; resuming needs a keyframe.
    assert_eq!(s.set_target(None), None);
    assert_eq!(s.current(), None);
    assert_eq!(s.accept(1, false), Verdict::Drop);
    assert_eq!(s.set_target(Some(1)), Some(KeyframeWanted(1)));
    assert_eq!(s.accept(1, false), Verdict::Drop);
    assert_eq!(s.accept(1, true), Verdict::SwitchAndForward);
}

#[test]
fn current_layer_stops_then_target_takes_over_at_its_keyframe() {
    let mut s = LayerSwitch::new();
    s.set_target(Some(2));
    s.accept(2, true);
    // The publisher drops its top layer; the caller re-picks.
    let layers = [layer(180, 150), layer(360, 500), off(layer(720, 1500))];
    let t = pick_layer(&layers, None, None);
    assert_eq!(s.set_target(t), Some(KeyframeWanted(1)));
    assert_eq!(s.current(), Some(2), "nothing else to send meanwhile");
    assert_eq!(s.accept(0, true), Verdict::Drop);
    assert_eq!(s.accept(1, true), Verdict::SwitchAndForward);
}

#[test]
fn rewriter_continues_across_inputs() {
    let t0 = Instant::now();
    let ms = |m: u64| t0 + Duration::from_millis(m);
    let mut r = SeqRewriter::new(1000, 5000);
    assert_eq!(r.last(), None);
    // Input A starts high in both numbers.
    assert_eq!(
        r.rewrite(0xa, 70_000, 900_000, ms(0), 90_000),
        Some((1000, 5000))
    );
    assert_eq!(
        r.rewrite(0xa, 70_001, 900_000, ms(1), 90_000),
        Some((1001, 5000))
    );
    assert_eq!(
        r.rewrite(0xa, 70_002, 903_000, ms(33), 90_000),
        Some((1002, 8000))
    );
    assert_eq!(r.last(), Some((1002, 8000)));
    // Switch to B 100 ms after A's last packet: 9000 ticks later.
    assert_eq!(r.rewrite(0xb, 7, 42, ms(133), 90_000), Some((1003, 17_000)));
    assert_eq!(
        r.rewrite(0xb, 8, 3042, ms(166), 90_000),
        Some((1004, 20_000))
    );
    // Older than B's switch point: dropped.
    assert_eq!(r.rewrite(0xb, 6, 0, ms(167), 90_000), None);
    // A's late packet after the switch counts as a switch back (the caller
    // feeds only what it forwards), continuing from the newest sent.
    assert_eq!(
        r.rewrite(0xa, 70_003, 906_000, ms(166), 90_000),
        Some((1005, 20_001))
    );
}

#[test]
fn rewriter_keeps_gaps_reordering_and_wraps() {
    let t0 = Instant::now();
    let mut r = SeqRewriter::new(65_000, u32::MAX - 1000);
    assert_eq!(
        r.rewrite(1, 10, 0, t0, 90_000),
        Some((65_000, u32::MAX - 1000))
    );
    // Gap of two lost packets is kept; the timestamp wraps.
    assert_eq!(r.rewrite(1, 13, 3000, t0, 90_000), Some((65_003, 1999)));
    // A reordered packet maps in between, and last() stays the newest.
    assert_eq!(
        r.rewrite(1, 11, 0, t0, 90_000),
        Some((65_001, u32::MAX - 1000))
    );
    assert_eq!(r.last(), Some((65_003, 1999)));
    // Repeats map the same.
    assert_eq!(r.rewrite(1, 13, 3000, t0, 90_000), Some((65_003, 1999)));
    // Past 65535 the extended number just goes on.
    assert_eq!(r.rewrite(1, 600, 3000, t0, 90_000), Some((65_590, 1999)));
    // NACK mapping: only the current input's range since its switch point.
    assert_eq!(r.input_seq(65_001), Some((1, 11)));
    assert_eq!(r.input_seq(64_999), None);
    assert_eq!(r.input_seq(65_591), None, "not sent yet");
}

#[test]
fn rewriter_switch_steps_are_bounded() {
    let t0 = Instant::now();
    let mut r = SeqRewriter::new(0, 0);
    r.rewrite(1, 0, 0, t0, 90_000);
    // Same arrival time: the timestamp still moves by at least 1.
    assert_eq!(r.rewrite(2, 0, 77, t0, 90_000), Some((1, 1)));
    // Arrival going backwards counts as no time.
    assert_eq!(r.rewrite(3, 0, 77, t0, 90_000), Some((2, 2)));
    // A clock rate of 0 (a caller bug) still steps by 1.
    assert_eq!(
        r.rewrite(4, 0, 0, t0 + Duration::from_secs(1), 0),
        Some((3, 3))
    );
    // A day later: capped so it still looks forward.
    let day = t0 + Duration::from_secs(86_400);
    assert_eq!(
        r.rewrite(5, 0, 0, day, 90_000),
        Some((4, 3 + i32::MAX as u32))
    );
    // reset_input: the same SSRC restarting low becomes a new input.
    assert_eq!(
        r.rewrite(5, 100, 0, day, 90_000),
        Some((104, 3 + i32::MAX as u32))
    );
    r.reset_input();
    assert_eq!(
        r.rewrite(5, 3, 0, day + Duration::from_millis(20), 48_000),
        Some((105, 3 + i32::MAX as u32 + 960))
    );
}

/// One simulated input stream.
struct Stream {
    ssrc: u32,
    seq: u64,
    ts: u32,
}

/// Random inputs with random switches, loss, reordering and repeats; the
/// output must be one stream: fixed offsets within an input, +1 and a
/// positive step at each switch, older-than-switch packets dropped, every
/// output number belonging to one input packet only.
#[test]
fn rewriter_property_random_switches() {
    for seed in 0..200u64 {
        let mut rng = Lcg(seed);
        let t0 = Instant::now();
        let mut now = t0;
        let mut streams: Vec<Stream> = (0..3)
            .map(|i| Stream {
                ssrc: 100 + i,
                seq: u64::from(rng.below(100_000)),
                // Start near the wrap to cross it often.
                ts: u32::MAX - rng.below(200_000),
            })
            .collect();
        let initial = rng.below(65_536) as u16;
        let mut r = SeqRewriter::new(initial, rng.next());
        let mut owner: HashMap<u64, (u32, u64)> = HashMap::new();
        let mut newest: Option<(u64, u32)> = None;
        let mut prev_ssrc = None;
        for _segment in 0..20 {
            let mut idx = rng.below(3) as usize;
            if Some(streams[idx].ssrc) == prev_ssrc {
                idx = (idx + 1) % 3;
            }
            // A pause between inputs (the wait for a keyframe).
            now += Duration::from_millis(u64::from(rng.below(300)));
            let s = &mut streams[idx];
            // The input ran on meanwhile.
            s.seq += u64::from(rng.below(50));
            s.ts = s.ts.wrapping_add(rng.below(30_000));
            // Packets of this segment: (seq, ts), with loss and repeats.
            let mut packets = Vec::new();
            for _ in 0..(1 + rng.below(40)) {
                s.seq += 1 + u64::from(rng.below(10) == 0); // ~10% loss
                if rng.below(4) == 0 {
                    s.ts = s.ts.wrapping_add(3000);
                }
                packets.push((s.seq, s.ts));
                if rng.below(20) == 0 {
                    packets.push((s.seq, s.ts)); // repeat
                }
            }
            // Reordering: adjacent swaps, the first packet included.
            for i in 1..packets.len() {
                if rng.below(6) == 0 {
                    packets.swap(i - 1, i);
                }
            }
            let switch_point = packets[0];
            let mut base: Option<(u64, u32)> = None;
            for &(seq, ts) in &packets {
                now += Duration::from_millis(u64::from(rng.below(5)));
                let out = r.rewrite(s.ssrc, seq, ts, now, 90_000);
                if seq < switch_point.0 {
                    assert_eq!(out, None, "seed {seed}: older than the switch");
                    continue;
                }
                let (oseq, ots) = out.expect("forwarded");
                match base {
                    None => {
                        match newest {
                            None => assert_eq!(oseq, u64::from(initial)),
                            Some((nseq, nts)) => {
                                assert_eq!(oseq, nseq + 1, "seed {seed}: +1 at a switch");
                                let step = ots.wrapping_sub(nts) as i32;
                                assert!(step >= 1, "seed {seed}: ts step {step}");
                            }
                        }
                        base = Some((oseq, ots));
                    }
                    Some((bseq, bts)) => {
                        assert_eq!(oseq - bseq, seq - switch_point.0, "seed {seed}");
                        assert_eq!(ots.wrapping_sub(bts), ts.wrapping_sub(switch_point.1));
                    }
                }
                let prior = owner.insert(oseq, (s.ssrc, seq));
                assert!(
                    prior.is_none_or(|p| p == (s.ssrc, seq)),
                    "seed {seed}: output {oseq} reused"
                );
                assert_eq!(r.input_seq(oseq), Some((s.ssrc, seq)));
                if newest.is_none_or(|(n, _)| oseq > n) {
                    newest = Some((oseq, ots));
                }
            }
            assert_eq!(r.last(), newest);
            prev_ssrc = Some(s.ssrc);
        }
    }
}

//! Simulcast and temporal layer choice for one forwarded video stream,
//! without I/O.
//!
//! A sender publishes up to three layers of one camera, each named by its rid
//! and each half the width and height of the one above. A VP8 sender may also
//! split each layer into temporal layers: a base layer at half the frame rate
//! and frames between that nothing refers to. For every receiver the SFU
//! forwards one layer, whole or its base alone: the smallest layer that still
//! covers the size the receiver shows, lowered further while its bitrate
//! exceeds the receiver's share of its bandwidth estimate. A switch between
//! simulcast layers waits for a keyframe of the new layer, and until it
//! arrives keyframes of it are requested at a bounded rate. Dropping the
//! upper temporal layer takes effect at once; taking it again waits for a
//! frame that refers only to the base layer.

use std::time::{Duration, Instant};

use str0m::media::Rid;

/// The minimum time between two keyframe requests for one pending switch.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(300);

/// One layer a sender publishes, as the SFU measures it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    pub rid: Rid,
    /// Received bitrate over the last second, in bits per second.
    pub bitrate_bps: u64,
    /// The bitrate of the base temporal layer alone, when the layer's frames
    /// carry temporal layer ids above 0.
    pub base_bitrate_bps: Option<u64>,
}

/// The part of one stream that a receiver gets: a simulcast layer, whole or
/// only its base temporal layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    pub rid: Rid,
    pub base_only: bool,
}

impl Choice {
    /// Returns the choice of a whole layer.
    pub fn whole(rid: Rid) -> Self {
        Self {
            rid,
            base_only: false,
        }
    }
}

/// How far the share must exceed a higher layer's bitrate before the
/// receiver is moved up to it. Without the margin a receiver whose share is
/// close to a layer's bitrate would switch back and forth, paying a keyframe
/// each time.
pub const UP_SWITCH_MARGIN: f64 = 1.3;

/// One stream a receiver gets, for sharing its bandwidth among its streams.
#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    /// The layers, ordered from the highest quality down.
    pub layers: &'a [Layer],
    /// The size of the sender's top layer, if the sender reported it.
    pub top_size: Option<(u32, u32)>,
    /// The size at which the receiver shows the sender, if it reported it.
    pub view: Option<(u32, u32)>,
    /// The choice forwarded now, or the one a pending switch goes to.
    pub current: Option<Choice>,
}

impl Stream<'_> {
    /// Returns what the receiver can get of this stream with its bitrate,
    /// best first: each layer whole, then its base temporal layer alone
    /// when it has one.
    fn steps(&self) -> Vec<(Choice, u64)> {
        let mut steps = Vec::with_capacity(self.layers.len() * 2);
        for layer in self.layers {
            steps.push((Choice::whole(layer.rid), layer.bitrate_bps));
            if let Some(base_bps) = layer.base_bitrate_bps {
                let base = Choice {
                    rid: layer.rid,
                    base_only: true,
                };
                steps.push((base, base_bps));
            }
        }
        steps
    }

    /// Returns the index in `steps` of the best step worth sending: the
    /// whole of the smallest layer that still covers the view. Layer `i` is
    /// the top layer scaled down by 2^i.
    fn ceiling(&self, steps: &[(Choice, u64)]) -> usize {
        let mut index = 0;
        if let (Some((top_width, top_height)), Some((view_width, view_height))) =
            (self.top_size, self.view)
        {
            while index + 1 < self.layers.len() {
                let scale = 1u32 << (index + 1);
                if top_width / scale >= view_width && top_height / scale >= view_height {
                    index += 1;
                } else {
                    break;
                }
            }
        }
        let rid = self.layers.get(index).map(|layer| layer.rid);
        steps
            .iter()
            .position(|(choice, _)| Some(choice.rid) == rid && !choice.base_only)
            .unwrap_or(0)
    }

    /// Returns the cost of step `index` against the budget: its bitrate,
    /// times the up-switch margin when it is above what is forwarded now.
    fn cost(&self, steps: &[(Choice, u64)], index: usize) -> f64 {
        let current = self
            .current
            .and_then(|current| steps.iter().position(|(choice, _)| *choice == current));
        let margin = if current.is_some_and(|current| index < current) {
            UP_SWITCH_MARGIN
        } else {
            1.0
        };
        steps[index].1 as f64 * margin
    }
}

/// Shares a receiver's bandwidth among its streams. Without a budget every
/// stream gets the best layer worth sending. With one, every stream starts
/// from its lowest step, and the streams take turns moving up one step
/// while the sum still fits, so that the budget is used rather than split
/// evenly. Returns the choice for each stream, `None` for a stream without
/// layers.
pub fn allocate(streams: &[Stream<'_>], budget_bps: Option<u64>) -> Vec<Option<Choice>> {
    let steps: Vec<Vec<(Choice, u64)>> = streams.iter().map(Stream::steps).collect();
    let ceilings: Vec<usize> = streams
        .iter()
        .zip(&steps)
        .map(|(stream, steps)| stream.ceiling(steps))
        .collect();
    let mut chosen: Vec<usize> = match budget_bps {
        None => ceilings.clone(),
        Some(_) => steps.iter().map(|s| s.len().saturating_sub(1)).collect(),
    };
    if let Some(budget) = budget_bps {
        let budget = budget as f64;
        let mut spent: f64 = streams
            .iter()
            .zip(&steps)
            .zip(&chosen)
            .filter(|((_, steps), _)| !steps.is_empty())
            .map(|((stream, steps), index)| stream.cost(steps, *index))
            .sum();
        loop {
            let mut moved = false;
            for (i, stream) in streams.iter().enumerate() {
                if steps[i].is_empty() || chosen[i] <= ceilings[i] {
                    continue;
                }
                let extra =
                    stream.cost(&steps[i], chosen[i] - 1) - stream.cost(&steps[i], chosen[i]);
                if spent + extra <= budget {
                    spent += extra;
                    chosen[i] -= 1;
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }
    steps
        .iter()
        .zip(chosen)
        .map(|(steps, index)| steps.get(index).map(|(choice, _)| *choice))
        .collect()
}

/// The temporal layer of one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameLayer {
    /// Temporal layer id; 0 for the base layer and for streams without layers.
    pub id: u8,
    /// The frame refers only to base-layer frames.
    pub sync: bool,
}

/// The layer a receiver gets of one stream, and a switch in progress.
#[derive(Debug, Clone, Default)]
pub struct LayerState {
    /// The rid being forwarded; `None` until the first keyframe arrives.
    pub current: Option<Rid>,
    /// The rid to switch to at its next keyframe.
    pub target: Option<Rid>,
    /// Whether only the base temporal layer is forwarded.
    pub base_only: bool,
    /// The highest temporal layer forwarded with no frame missing since the
    /// last keyframe or sync frame. A frame above it may refer to a frame
    /// that was dropped, so it waits for a sync frame.
    synced_layer: u8,
    last_keyframe_request: Option<Instant>,
}

/// What to do with one frame of a simulcast stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forward {
    /// Forward the frame.
    Send,
    /// Drop the frame: it belongs to another layer, to a temporal layer the
    /// receiver does not get, or the switch waits for a keyframe.
    Drop,
}

impl LayerState {
    /// Sets what to forward. A switch to the current layer cancels a
    /// pending one.
    pub fn set_target(&mut self, target: Choice) {
        self.target = Some(target.rid);
        self.base_only = target.base_only;
    }

    /// Returns what is forwarded, or what a pending switch goes to.
    pub fn choice(&self) -> Option<Choice> {
        self.target.or(self.current).map(|rid| Choice {
            rid,
            base_only: self.base_only,
        })
    }

    /// Returns whether a switch waits for a keyframe of the target layer.
    pub fn switch_pending(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// Decides about one frame of layer `rid`. A keyframe of the target
    /// layer completes a pending switch; the frame that completes it is the
    /// first one forwarded from the new layer.
    pub fn on_frame(&mut self, rid: Rid, keyframe: bool, temporal: FrameLayer) -> Forward {
        if self.switch_pending() && self.target == Some(rid) && keyframe {
            self.current = Some(rid);
            self.last_keyframe_request = None;
        }
        if self.current != Some(rid) {
            return Forward::Drop;
        }
        if keyframe {
            self.synced_layer = u8::MAX;
        }
        if temporal.id == 0 {
            return Forward::Send;
        }
        if self.base_only {
            self.synced_layer = self.synced_layer.min(temporal.id - 1);
            return Forward::Drop;
        }
        if temporal.id <= self.synced_layer {
            return Forward::Send;
        }
        if temporal.sync && temporal.id == self.synced_layer + 1 {
            self.synced_layer = temporal.id;
            return Forward::Send;
        }
        Forward::Drop
    }

    /// Returns the rid whose keyframe to request now, at most once every
    /// [`KEYFRAME_REQUEST_INTERVAL`], and only while a switch is pending.
    pub fn keyframe_request(&mut self, now: Instant) -> Option<Rid> {
        if !self.switch_pending() {
            return None;
        }
        if let Some(last) = self.last_keyframe_request
            && now.duration_since(last) < KEYFRAME_REQUEST_INTERVAL
        {
            return None;
        }
        self.last_keyframe_request = Some(now);
        self.target
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The limits of one receiver for one stream.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    struct Constraints {
        /// The size of the sender's top layer, if the sender reported it.
        top_size: Option<(u32, u32)>,
        /// The size at which the receiver shows the sender, if it reported it.
        view: Option<(u32, u32)>,
        /// The receiver's share of its bandwidth estimate for this stream.
        share_bps: Option<u64>,
    }

    /// Picks the rid to forward from `layers`, which are ordered from the
    /// highest quality down, given the rid forwarded now. Returns `None` when
    /// there are no layers.
    fn choose(layers: &[Layer], constraints: Constraints, current: Option<Rid>) -> Option<Rid> {
        let stream = Stream {
            layers,
            top_size: constraints.top_size,
            view: constraints.view,
            current: current.map(Choice::whole),
        };
        allocate(&[stream], constraints.share_bps)[0].map(|choice| {
            assert!(!choice.base_only);
            choice.rid
        })
    }

    fn whole(rid: Option<&str>) -> Option<Choice> {
        rid.map(|rid| Choice::whole(rid.into()))
    }

    fn base(rid: &str) -> Option<Choice> {
        Some(Choice {
            rid: rid.into(),
            base_only: true,
        })
    }

    fn layer(rid: &str, bitrate_bps: u64) -> Layer {
        Layer {
            rid: rid.into(),
            bitrate_bps,
            base_bitrate_bps: None,
        }
    }

    fn ladder() -> Vec<Layer> {
        vec![
            layer("h", 1_500_000),
            layer("m", 500_000),
            layer("l", 150_000),
        ]
    }

    #[test]
    fn unconstrained_receiver_gets_the_top_layer() {
        assert_eq!(
            choose(&ladder(), Constraints::default(), None),
            Some("h".into())
        );
    }

    #[test]
    fn small_view_gets_the_smallest_layer_that_covers_it() {
        let constraints = Constraints {
            top_size: Some((1280, 720)),
            view: Some((320, 180)),
            share_bps: None,
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("l".into()));
        let constraints = Constraints {
            view: Some((400, 225)),
            ..constraints
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("m".into()));
    }

    #[test]
    fn odd_aspect_ratios_compare_both_sides() {
        // 5120x960 shown in a 1280x240 tile: the quarter layer is 1280x240.
        let constraints = Constraints {
            top_size: Some((5120, 960)),
            view: Some((1280, 240)),
            share_bps: None,
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("l".into()));
        // 2560x1920 in a 1000x800 tile: the half layer 1280x960 covers it.
        let constraints = Constraints {
            top_size: Some((2560, 1920)),
            view: Some((1000, 800)),
            share_bps: None,
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("m".into()));
    }

    #[test]
    fn low_bandwidth_lowers_the_layer() {
        let constraints = Constraints {
            share_bps: Some(600_000),
            ..Constraints::default()
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("m".into()));
        let constraints = Constraints {
            share_bps: Some(50_000),
            ..Constraints::default()
        };
        assert_eq!(choose(&ladder(), constraints, None), Some("l".into()));
    }

    #[test]
    fn moving_up_needs_a_margin_moving_down_does_not() {
        let constraints = Constraints {
            share_bps: Some(1_600_000),
            ..Constraints::default()
        };
        // 1.6 Mbit/s covers the 1.5 Mbit/s top layer, but not with the margin.
        assert_eq!(
            choose(&ladder(), constraints, Some("m".into())),
            Some("m".into())
        );
        assert_eq!(
            choose(&ladder(), constraints, Some("h".into())),
            Some("h".into())
        );
        let constraints = Constraints {
            share_bps: Some(2_000_000),
            ..Constraints::default()
        };
        assert_eq!(
            choose(&ladder(), constraints, Some("m".into())),
            Some("h".into())
        );
        let constraints = Constraints {
            share_bps: Some(1_400_000),
            ..Constraints::default()
        };
        assert_eq!(
            choose(&ladder(), constraints, Some("h".into())),
            Some("m".into())
        );
    }

    #[test]
    fn switch_waits_for_a_keyframe_of_the_target() {
        // Frames of a stream without temporal layers: rid and keyframe.
        let frame = |state: &mut LayerState, rid: &str, keyframe: bool| {
            state.on_frame(rid.into(), keyframe, FrameLayer::default())
        };
        let mut state = LayerState::default();
        state.set_target(Choice::whole("h".into()));
        assert_eq!(frame(&mut state, "h", false), Forward::Drop);
        assert_eq!(frame(&mut state, "h", true), Forward::Send);
        assert_eq!(frame(&mut state, "l", true), Forward::Drop);

        state.set_target(Choice::whole("l".into()));
        // The old layer keeps flowing until the new one has a keyframe.
        assert_eq!(frame(&mut state, "h", false), Forward::Send);
        assert_eq!(frame(&mut state, "l", false), Forward::Drop);
        assert_eq!(frame(&mut state, "l", true), Forward::Send);
        assert_eq!(frame(&mut state, "h", false), Forward::Drop);
        assert!(!state.switch_pending());
    }

    #[test]
    fn keyframe_requests_only_while_a_switch_is_pending() {
        let start = Instant::now();
        let mut state = LayerState::default();
        assert_eq!(state.keyframe_request(start), None);
        state.set_target(Choice::whole("m".into()));
        assert_eq!(state.keyframe_request(start), Some("m".into()));
        assert_eq!(
            state.keyframe_request(start + Duration::from_millis(100)),
            None
        );
        let later = start + KEYFRAME_REQUEST_INTERVAL;
        assert_eq!(state.keyframe_request(later), Some("m".into()));
        state.on_frame("m".into(), true, FrameLayer::default());
        assert_eq!(state.keyframe_request(later + Duration::from_secs(5)), None);
    }

    #[test]
    fn budget_goes_to_whole_layers_in_turn() {
        let ladder = vec![layer("f", 400_000), layer("h", 150_000), layer("q", 60_000)];
        let stream = Stream {
            layers: &ladder,
            top_size: None,
            view: None,
            current: None,
        };
        // An even split (283 kbit/s each) would give everyone the middle
        // layer; in turns, the first stream reaches the top.
        assert_eq!(
            allocate(&[stream; 3], Some(850_000)),
            [Some("f"), Some("h"), Some("h")].map(whole)
        );
        assert_eq!(allocate(&[stream; 3], None), [Some("f"); 3].map(whole));
        // Below the sum of the lowest layers, the lowest layers still go.
        assert_eq!(
            allocate(&[stream; 3], Some(10_000)),
            [Some("q"); 3].map(whole)
        );
        let empty = Stream {
            layers: &[],
            ..stream
        };
        assert_eq!(
            allocate(&[empty, stream], Some(500_000)),
            [None, Some("f")].map(whole)
        );
    }

    #[test]
    fn base_temporal_layer_fills_the_gaps_between_layers() {
        let ladder = [
            Layer {
                base_bitrate_bps: Some(900_000),
                ..layer("h", 1_500_000)
            },
            Layer {
                base_bitrate_bps: Some(300_000),
                ..layer("m", 500_000)
            },
            Layer {
                base_bitrate_bps: Some(90_000),
                ..layer("l", 150_000)
            },
        ];
        let stream = Stream {
            layers: &ladder,
            top_size: None,
            view: None,
            current: None,
        };
        let with = |budget: u64| allocate(&[stream], Some(budget))[0];
        assert_eq!(with(2_000_000), whole(Some("h")));
        assert_eq!(with(1_200_000), base("h"));
        assert_eq!(with(600_000), whole(Some("m")));
        assert_eq!(with(400_000), base("m"));
        assert_eq!(with(200_000), whole(Some("l")));
        assert_eq!(with(100_000), base("l"));
        // Below the lowest step, it still goes.
        assert_eq!(with(10_000), base("l"));
        assert_eq!(allocate(&[stream], None)[0], whole(Some("h")));

        // Taking the upper layer again needs the margin too.
        let current = Stream {
            current: base("h"),
            ..stream
        };
        assert_eq!(allocate(&[current], Some(1_600_000))[0], base("h"));
        assert_eq!(allocate(&[current], Some(2_000_000))[0], whole(Some("h")));
        // A small view caps the layer, whole.
        let small = Stream {
            top_size: Some((1280, 720)),
            view: Some((640, 360)),
            ..stream
        };
        assert_eq!(allocate(&[small], Some(5_000_000))[0], whole(Some("m")));
    }

    #[test]
    fn upper_temporal_layer_resumes_at_a_sync_frame() {
        // Frames of layer "h": keyframe, temporal layer id and sync bit.
        let frame = |state: &mut LayerState, keyframe: bool, id: u8, sync: bool| {
            state.on_frame("h".into(), keyframe, FrameLayer { id, sync })
        };
        let base_only = Choice {
            rid: "h".into(),
            base_only: true,
        };
        let mut state = LayerState::default();
        state.set_target(Choice::whole("h".into()));
        assert_eq!(frame(&mut state, true, 0, true), Forward::Send);
        assert_eq!(frame(&mut state, false, 1, false), Forward::Send);

        state.set_target(base_only);
        assert!(!state.switch_pending());
        assert_eq!(frame(&mut state, false, 1, true), Forward::Drop);
        assert_eq!(frame(&mut state, false, 0, true), Forward::Send);

        state.set_target(Choice::whole("h".into()));
        // This frame may refer to the upper frame that was dropped.
        assert_eq!(frame(&mut state, false, 1, false), Forward::Drop);
        assert_eq!(frame(&mut state, false, 1, true), Forward::Send);
        assert_eq!(frame(&mut state, false, 1, false), Forward::Send);

        // With three layers, layer 2 waits until layer 1 is in sync.
        state.set_target(base_only);
        assert_eq!(frame(&mut state, false, 1, false), Forward::Drop);
        state.set_target(Choice::whole("h".into()));
        assert_eq!(frame(&mut state, false, 2, true), Forward::Drop);
        assert_eq!(frame(&mut state, false, 1, true), Forward::Send);
        assert_eq!(frame(&mut state, false, 2, true), Forward::Send);

        // A keyframe brings every layer back in sync.
        state.set_target(base_only);
        assert_eq!(frame(&mut state, false, 1, true), Forward::Drop);
        state.set_target(Choice::whole("h".into()));
        assert_eq!(frame(&mut state, true, 0, true), Forward::Send);
        assert_eq!(frame(&mut state, false, 1, false), Forward::Send);
    }
}

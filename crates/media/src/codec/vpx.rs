//! The only unsafe code of the VP8 codec: a safe wrapper over libvpx's C API
//! (`env-libvpx-sys`, built against the system libvpx, 1.12 on Debian 12).
//!
//! Invariants that make the `unsafe` blocks sound:
//! - Each context lives in a `Box`, so its address stays fixed from
//!   `vpx_codec_*_init_ver` to `vpx_codec_destroy`, which libvpx requires.
//! - A wrapper exists only after its context initialised, and `Drop` destroys
//!   the context exactly once. A failed initialisation returns an error, so
//!   no wrapper exists and nothing is destroyed.
//! - Every call takes `&mut self`, so one context is never used from two
//!   threads at once. libvpx keeps no thread-local state, so a context may
//!   move to another thread between calls, which makes the wrappers `Send`.
//! - Pointers that libvpx returns (encoded packets, decoded images) are read
//!   before the next call on the same context, which is as long as libvpx
//!   keeps them valid, and copied into owned Rust buffers.

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_uint, c_ulong};
use std::ptr;

use vpx_sys as sys;

use crate::frame::VideoFrame;

/// A libvpx call that failed, with libvpx's own description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VpxError {
    pub code: sys::vpx_codec_err_t,
    pub detail: String,
}

impl std::fmt::Display for VpxError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Returns libvpx's text for an error code.
fn error_text(code: sys::vpx_codec_err_t) -> String {
    // SAFETY: vpx_codec_err_to_string accepts any code and returns a pointer
    // to a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(sys::vpx_codec_err_to_string(code)) };
    text.to_string_lossy().into_owned()
}

/// Turns a libvpx status into a `Result`, adding the context's error detail.
fn check(ctx: &mut sys::vpx_codec_ctx_t, code: sys::vpx_codec_err_t) -> Result<(), VpxError> {
    if code == sys::vpx_codec_err_t::VPX_CODEC_OK {
        return Ok(());
    }
    let mut detail = error_text(code);
    // SAFETY: `ctx` is an initialised context, and vpx_codec_error_detail
    // returns NULL or a NUL-terminated string owned by the context.
    let extra = unsafe { sys::vpx_codec_error_detail(ctx) };
    if !extra.is_null() {
        // SAFETY: checked non-NULL above, and the string lives as long as `ctx`.
        let extra = unsafe { CStr::from_ptr(extra) };
        detail = format!("{detail}: {}", extra.to_string_lossy());
    }
    Err(VpxError { code, detail })
}

fn plain_error(code: sys::vpx_codec_err_t) -> VpxError {
    VpxError {
        code,
        detail: error_text(code),
    }
}

/// Real-time VP8 encoder settings that libvpx needs at initialisation.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    pub bitrate_kbps: u32,
    pub fps: f32,
    pub threads: u32,
    /// Frames between automatic keyframes; 0 disables them.
    pub keyframe_interval: u32,
    /// libvpx's speed preset `cpu-used`, -16 to 16. Larger magnitudes are faster.
    pub cpu_used: i32,
    /// Turns on libvpx's screen content mode, for shared screens.
    pub screen_content: bool,
    /// 1, or 2 for a base layer at half the frame rate and one layer above.
    pub temporal_layers: u32,
}

/// The share of the bitrate that the base layer gets with two temporal
/// layers. The base layer's frames are each coded against the previous base
/// frame, twice as far apart as consecutive frames, so they need more than
/// half of the bits.
const BASE_LAYER_BITRATE_SHARE: f64 = 0.6;

/// Reference flags of a base-layer frame: it refers to and updates only the
/// last frame buffer, which contains the previous base-layer frame.
const BASE_LAYER_FLAGS: u32 = sys::VP8_EFLAG_NO_REF_GF
    | sys::VP8_EFLAG_NO_REF_ARF
    | sys::VP8_EFLAG_NO_UPD_GF
    | sys::VP8_EFLAG_NO_UPD_ARF;

/// Reference flags of an upper-layer frame: it refers to the last base-layer
/// frame and updates no buffer and no probabilities, so dropping it leaves
/// the frames after it decodable.
const UPPER_LAYER_FLAGS: u32 = sys::VP8_EFLAG_NO_REF_GF
    | sys::VP8_EFLAG_NO_REF_ARF
    | sys::VP8_EFLAG_NO_UPD_LAST
    | sys::VP8_EFLAG_NO_UPD_GF
    | sys::VP8_EFLAG_NO_UPD_ARF
    | sys::VP8_EFLAG_NO_UPD_ENTROPY;

/// One VP8 frame from the encoder.
pub(crate) struct EncodedVp8 {
    pub data: Vec<u8>,
    pub keyframe: bool,
}

/// A libvpx VP8 encoder for one frame size.
pub(crate) struct Encoder {
    ctx: Box<sys::vpx_codec_ctx_t>,
    width: u32,
    height: u32,
    /// Presentation time of the next frame, in 90 kHz ticks.
    pts: i64,
    frame_duration: c_ulong,
    temporal_layers: u32,
}

// SAFETY: the context is only used through `&mut self` and keeps no
// thread-affine state (see the module documentation).
unsafe impl Send for Encoder {}

impl Encoder {
    pub fn new(settings: &EncoderSettings) -> Result<Self, VpxError> {
        let mut config = MaybeUninit::<sys::vpx_codec_enc_cfg_t>::uninit();
        // SAFETY: vpx_codec_vp8_cx returns a static interface. On success
        // vpx_codec_enc_config_default fills every field of `config`.
        let code = unsafe {
            sys::vpx_codec_enc_config_default(sys::vpx_codec_vp8_cx(), config.as_mut_ptr(), 0)
        };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(plain_error(code));
        }
        // SAFETY: initialised by the successful call above.
        let mut config = unsafe { config.assume_init() };
        configure_real_time(&mut config, settings);

        let mut ctx: Box<sys::vpx_codec_ctx_t> =
            // SAFETY: an all-zero context is the state libvpx expects before
            // initialisation (C callers zero it too).
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: `ctx` is a zeroed context at a fixed address, `config` is a
        // valid configuration, and the ABI version is the one the bindings
        // were generated for.
        let code = unsafe {
            sys::vpx_codec_enc_init_ver(
                &mut *ctx,
                sys::vpx_codec_vp8_cx(),
                &config,
                0,
                sys::VPX_ENCODER_ABI_VERSION as c_int,
            )
        };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(plain_error(code));
        }
        let fps = settings.fps.max(1.0);
        let mut encoder = Self {
            ctx,
            width: settings.width,
            height: settings.height,
            pts: 0,
            frame_duration: (90_000.0 / fps).round() as c_ulong,
            temporal_layers: settings.temporal_layers.clamp(1, 2),
        };

        // Camera video controls: the speed preset, skipping unchanged blocks
        // and no temporal denoiser, which costs time. Keyframes are capped
        // at half the 600 ms optimal buffer, in percent of an average frame,
        // so that a keyframe does not flood the network.
        let max_intra_pct = (300.0 * fps / 10.0).max(300.0) as c_int;
        encoder.control(
            sys::vp8e_enc_control_id::VP8E_SET_CPUUSED as c_int,
            settings.cpu_used,
        )?;
        encoder.control(
            sys::vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD as c_int,
            1,
        )?;
        encoder.control(
            sys::vp8e_enc_control_id::VP8E_SET_NOISE_SENSITIVITY as c_int,
            0,
        )?;
        encoder.control(
            sys::vp8e_enc_control_id::VP8E_SET_MAX_INTRA_BITRATE_PCT as c_int,
            max_intra_pct,
        )?;
        if settings.screen_content {
            encoder.control(
                sys::vp8e_enc_control_id::VP8E_SET_SCREEN_CONTENT_MODE as c_int,
                1,
            )?;
        }
        Ok(encoder)
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Returns the number of temporal layers the encoder was created with.
    pub fn temporal_layers(&self) -> u32 {
        self.temporal_layers
    }

    fn control(&mut self, id: c_int, value: c_int) -> Result<(), VpxError> {
        // SAFETY: the context is initialised, and every control used here
        // takes one `int` argument, which is what the variadic call passes.
        let code = unsafe { sys::vpx_codec_control_(&mut *self.ctx, id, value) };
        check(&mut self.ctx, code)
    }

    /// Encodes one I420 frame of the encoder's size, in temporal layer
    /// `layer` (0 or 1) when the encoder has two. Returns `None` when the
    /// encoder dropped the frame.
    pub fn encode(
        &mut self,
        frame: &VideoFrame,
        force_keyframe: bool,
        layer: u32,
    ) -> Result<Option<EncodedVp8>, VpxError> {
        let size_matches = (frame.width as u32, frame.height as u32) == (self.width, self.height);
        if !size_matches || frame.data.len() < VideoFrame::i420_len(frame.width, frame.height) {
            return Err(plain_error(sys::vpx_codec_err_t::VPX_CODEC_INVALID_PARAM));
        }
        let image = wrap_i420(frame);
        let mut flags = if force_keyframe {
            sys::VPX_EFLAG_FORCE_KF as sys::vpx_enc_frame_flags_t
        } else {
            0
        };
        if self.temporal_layers > 1 {
            let layer = layer.min(self.temporal_layers - 1);
            // The flags type is a C `long`: 32 bits on Windows, 64 elsewhere,
            // and every flag fits in 32 bits.
            let layer_flags = if layer == 0 {
                BASE_LAYER_FLAGS
            } else {
                UPPER_LAYER_FLAGS
            };
            flags |= layer_flags as sys::vpx_enc_frame_flags_t;
            self.control(
                sys::vp8e_enc_control_id::VP8E_SET_TEMPORAL_LAYER_ID as c_int,
                layer as c_int,
            )?;
        }
        // SAFETY: `image` points into `frame.data`, a complete I420 picture of
        // the configured size (checked above) that outlives the call. libvpx
        // copies the picture before it returns, because it runs with no lag.
        let code = unsafe {
            sys::vpx_codec_encode(
                &mut *self.ctx,
                &image,
                self.pts,
                self.frame_duration,
                flags,
                sys::VPX_DL_REALTIME as c_ulong,
            )
        };
        check(&mut self.ctx, code)?;
        self.pts += self.frame_duration as i64;

        let mut output: Option<EncodedVp8> = None;
        let mut iter: sys::vpx_codec_iter_t = ptr::null();
        loop {
            // SAFETY: the context is initialised and `iter` starts at NULL, as
            // the iteration protocol requires.
            let packet = unsafe { sys::vpx_codec_get_cx_data(&mut *self.ctx, &mut iter) };
            if packet.is_null() {
                break;
            }
            // SAFETY: non-NULL packets stay valid until the next call on the context.
            let packet = unsafe { &*packet };
            if packet.kind != sys::vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                continue;
            }
            // SAFETY: `frame` is the active union member for frame packets.
            let frame_packet = unsafe { packet.data.frame };
            if frame_packet.buf.is_null() || frame_packet.sz == 0 {
                continue;
            }
            // SAFETY: libvpx guarantees `sz` readable bytes at `buf` until the
            // next call on the context.
            let bytes = unsafe {
                std::slice::from_raw_parts(frame_packet.buf as *const u8, frame_packet.sz as usize)
            };
            let keyframe = frame_packet.flags & sys::VPX_FRAME_IS_KEY != 0;
            match &mut output {
                Some(encoded) => {
                    encoded.data.extend_from_slice(bytes);
                    encoded.keyframe |= keyframe;
                }
                None => {
                    output = Some(EncodedVp8 {
                        data: bytes.to_vec(),
                        keyframe,
                    })
                }
            }
        }
        Ok(output)
    }
}

impl Drop for Encoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed only here.
        unsafe {
            sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Sets one-pass CBR with error resilience and no lag, as real-time calls need.
fn configure_real_time(config: &mut sys::vpx_codec_enc_cfg_t, settings: &EncoderSettings) {
    config.g_w = settings.width;
    config.g_h = settings.height;
    config.g_threads = settings.threads.max(1);
    config.g_timebase = sys::vpx_rational {
        num: 1,
        den: 90_000,
    };
    config.g_pass = sys::vpx_enc_pass::VPX_RC_ONE_PASS;
    config.g_lag_in_frames = 0;

    // Each frame decodes after a lost frame once the references it uses are intact.
    config.g_error_resilient = sys::VPX_ERROR_RESILIENT_DEFAULT as sys::vpx_codec_er_flags_t;

    config.rc_end_usage = sys::vpx_rc_mode::VPX_CBR;
    config.rc_target_bitrate = settings.bitrate_kbps.max(1);
    // Never drop frames: the sender paces frames and counts every one.
    config.rc_dropframe_thresh = 0;
    config.rc_resize_allowed = 0;

    // Quantizers 2 to 56 keep the worst frames watchable. The buffer (in ms)
    // starts half full, and rate control may undershoot by up to 100 % to
    // refill it but overshoot by only 15 %, which keeps queues short.
    config.rc_min_quantizer = 2;
    config.rc_max_quantizer = 56;
    config.rc_undershoot_pct = 100;
    config.rc_overshoot_pct = 15;
    config.rc_buf_initial_sz = 500;
    config.rc_buf_optimal_sz = 600;
    config.rc_buf_sz = 1000;

    if settings.temporal_layers > 1 {
        // Two layers in the pattern base, upper, base, upper: the base layer
        // runs at half the frame rate with its share of the bitrate, and
        // the targets are cumulative.
        let total = config.rc_target_bitrate;
        config.ts_number_layers = 2;
        config.ts_target_bitrate[0] =
            ((f64::from(total) * BASE_LAYER_BITRATE_SHARE) as c_uint).max(1);
        config.ts_target_bitrate[1] = total;
        config.ts_rate_decimator[0] = 2;
        config.ts_rate_decimator[1] = 1;
        config.ts_periodicity = 2;
        config.ts_layer_id[0] = 0;
        config.ts_layer_id[1] = 1;
    }

    if settings.keyframe_interval == 0 {
        config.kf_mode = sys::vpx_kf_mode::VPX_KF_DISABLED;
    } else {
        config.kf_mode = sys::vpx_kf_mode::VPX_KF_AUTO;
        config.kf_min_dist = 0;
        config.kf_max_dist = settings.keyframe_interval;
    }
}

/// Describes a packed I420 frame to libvpx without copying it.
fn wrap_i420(frame: &VideoFrame) -> sys::vpx_image_t {
    // SAFETY: vpx_image_t is a plain C struct for which all-zero is a valid,
    // empty value. Every field libvpx reads is set below.
    let mut image: sys::vpx_image_t = unsafe { MaybeUninit::zeroed().assume_init() };
    let (y, u, v) = frame.planes();
    let chroma_width = frame.chroma_width() as c_int;
    image.fmt = sys::vpx_img_fmt::VPX_IMG_FMT_I420;
    image.cs = sys::vpx_color_space::VPX_CS_BT_601;
    image.w = frame.width as c_uint;
    image.h = frame.height as c_uint;
    image.d_w = frame.width as c_uint;
    image.d_h = frame.height as c_uint;
    image.bit_depth = 8;
    image.bps = 12;
    image.x_chroma_shift = 1;
    image.y_chroma_shift = 1;
    // libvpx takes mutable plane pointers but only reads the source picture.
    image.planes = [
        y.as_ptr() as *mut u8,
        u.as_ptr() as *mut u8,
        v.as_ptr() as *mut u8,
        ptr::null_mut(),
    ];
    image.stride = [frame.width as c_int, chroma_width, chroma_width, 0];
    image
}

/// A libvpx VP8 decoder.
pub(crate) struct Decoder {
    ctx: Box<sys::vpx_codec_ctx_t>,
}

// SAFETY: see the module documentation.
unsafe impl Send for Decoder {}

/// A decoded picture and whether libvpx marked it corrupt, which happens when
/// it references a frame that was lost or did not decode.
pub(crate) struct DecodedVp8 {
    pub frame: VideoFrame,
    pub corrupt: bool,
}

impl Decoder {
    pub fn new() -> Result<Self, VpxError> {
        let config = sys::vpx_codec_dec_cfg_t {
            threads: 1,
            w: 0,
            h: 0,
        };
        let mut ctx: Box<sys::vpx_codec_ctx_t> =
            // SAFETY: an all-zero context is the state libvpx expects before initialisation.
            Box::new(unsafe { MaybeUninit::zeroed().assume_init() });
        // SAFETY: `ctx` is zeroed at a fixed address, `config` is valid for
        // the call, and the ABI version matches the bindings.
        let code = unsafe {
            sys::vpx_codec_dec_init_ver(
                &mut *ctx,
                sys::vpx_codec_vp8_dx(),
                &config,
                0,
                sys::VPX_DECODER_ABI_VERSION as c_int,
            )
        };
        if code != sys::vpx_codec_err_t::VPX_CODEC_OK {
            return Err(plain_error(code));
        }
        Ok(Self { ctx })
    }

    /// Decodes one VP8 frame. Returns `None` when the frame produced no
    /// picture, as for a frame that is not shown.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<DecodedVp8>, VpxError> {
        // An empty buffer would mean "flush" to libvpx, and VP8 has no delay to flush.
        let Ok(len) = c_uint::try_from(data.len()) else {
            return Err(plain_error(sys::vpx_codec_err_t::VPX_CODEC_INVALID_PARAM));
        };
        if len == 0 {
            return Err(plain_error(sys::vpx_codec_err_t::VPX_CODEC_INVALID_PARAM));
        }
        // SAFETY: the context is initialised and `data` is `len` readable
        // bytes; libvpx does not keep the pointer after the call returns.
        let code = unsafe {
            sys::vpx_codec_decode(&mut *self.ctx, data.as_ptr(), len, ptr::null_mut(), 0)
        };
        check(&mut self.ctx, code)?;

        let mut corrupt: c_int = 0;
        // SAFETY: VP8D_GET_FRAME_CORRUPTED writes one `int` through the pointer.
        let code = unsafe {
            sys::vpx_codec_control_(
                &mut *self.ctx,
                sys::vp8_dec_control_id::VP8D_GET_FRAME_CORRUPTED as c_int,
                &mut corrupt as *mut c_int,
            )
        };
        check(&mut self.ctx, code)?;

        let mut iter: sys::vpx_codec_iter_t = ptr::null();
        // SAFETY: the context is initialised and `iter` starts at NULL.
        let image = unsafe { sys::vpx_codec_get_frame(&mut *self.ctx, &mut iter) };
        if image.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-NULL image stays valid until the next decode call.
        let image = unsafe { &*image };
        let frame = copy_image(image)?;
        Ok(Some(DecodedVp8 {
            frame,
            corrupt: corrupt != 0,
        }))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        // SAFETY: the context was initialised in `new` and is destroyed only here.
        unsafe {
            sys::vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// Copies a decoded 8-bit I420 image into a packed frame.
fn copy_image(image: &sys::vpx_image_t) -> Result<VideoFrame, VpxError> {
    let unsupported = || plain_error(sys::vpx_codec_err_t::VPX_CODEC_UNSUP_BITSTREAM);
    if image.fmt != sys::vpx_img_fmt::VPX_IMG_FMT_I420 || image.d_w == 0 || image.d_h == 0 {
        return Err(unsupported());
    }
    let width = image.d_w as usize;
    let height = image.d_h as usize;
    let sizes = [
        (width, height),
        (width.div_ceil(2), height.div_ceil(2)),
        (width.div_ceil(2), height.div_ceil(2)),
    ];
    let mut planes: [&[u8]; 3] = [&[]; 3];
    let mut strides = [0usize; 3];
    for (index, (plane_width, plane_height)) in sizes.into_iter().enumerate() {
        let stride = usize::try_from(image.stride[index]).map_err(|_| unsupported())?;
        if stride < plane_width || image.planes[index].is_null() {
            return Err(unsupported());
        }
        let len = stride * (plane_height - 1) + plane_width;
        // SAFETY: libvpx allocates each plane with `stride` bytes for each of
        // its rows, so the first `len` bytes are readable while the image is valid.
        planes[index] = unsafe { std::slice::from_raw_parts(image.planes[index], len) };
        strides[index] = stride;
    }
    Ok(VideoFrame::from_strided(width, height, planes, strides))
}

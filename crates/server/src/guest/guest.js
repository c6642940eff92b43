// The guest page of a Hearth group call. It requests a display name, exchanges
// the invitation secret in the page address for a guest credential, and joins
// the conversation's call through the server's SFU with the browser's own
// WebRTC, speaking the same room frames as the native clients.
"use strict";

(() => {
  const PROTOCOL_VERSION = 1;
  // The simulcast encodings, as the native client sends them: full, half and
  // quarter size.
  const SIMULCAST = [
    { rid: "f", scaleResolutionDownBy: 1 },
    { rid: "h", scaleResolutionDownBy: 2 },
    { rid: "q", scaleResolutionDownBy: 4 },
  ];
  // The most a 1280x720 layer may send. A layer of other size gets this
  // scaled by its share of the pixels to the power 0.75, which gives about a
  // third for each halving of the size (900, 320 and 110 kbit/s at 720p).
  // Without a cap sized to the picture, libwebrtc sent 800 kbit/s for a
  // 320x180 layer.
  const MAX_BITRATE_720P = 900000;
  const MIN_BITRATE = 30000;

  // Returns the encodings for a camera picture of `width` by `height`.
  function simulcastEncodings(width, height) {
    return SIMULCAST.map((encoding) => {
      const pixels = (width * height) / encoding.scaleResolutionDownBy ** 2;
      const maxBitrate = Math.round(MAX_BITRATE_720P * (pixels / (1280 * 720)) ** 0.75);
      return Object.assign({}, encoding, { maxBitrate: Math.max(MIN_BITRATE, maxBitrate) });
    });
  }

  const TEXT = {
    en: {
      title: "Join the call as a guest",
      nameLabel: "Your name",
      join: "Join",
      mute: "Mute",
      unmute: "Unmute",
      cameraOff: "Turn camera off",
      cameraOn: "Turn camera on",
      leave: "Leave",
      you: "You",
      guest: "guest",
      gettingCredential: "Checking the invitation…",
      openingDevices: "Opening the camera and microphone…",
      connecting: "Connecting to the call…",
      inCall: (n) => (n === 1 ? "In the call. Nobody else is here yet." : `In the call with ${n - 1} other participant(s).`),
      left: "You left the call.",
      devicesFailed: "The camera or microphone could not be opened",
      connectionClosed: "The connection to the server closed.",
      invitation_not_found: "This invitation link is not valid. Check the link, or ask a member of the conversation for a new one.",
      invitation_expired: "This invitation has expired. Ask a member of the conversation for a new link.",
      invitation_revoked: "This invitation was revoked. Ask a member of the conversation for a new link.",
      invalid_request: "The server rejected the request",
      failed: "Something went wrong",
    },
    zh: {
      title: "以访客身份加入通话",
      nameLabel: "你的名字",
      join: "加入",
      mute: "静音",
      unmute: "取消静音",
      cameraOff: "关闭摄像头",
      cameraOn: "打开摄像头",
      leave: "离开",
      you: "你",
      guest: "访客",
      gettingCredential: "正在检查邀请…",
      openingDevices: "正在打开摄像头和麦克风…",
      connecting: "正在连接通话…",
      inCall: (n) => (n === 1 ? "已加入通话，暂时没有其他人。" : `已加入通话，另有 ${n - 1} 位参与者。`),
      left: "你已离开通话。",
      devicesFailed: "无法打开摄像头或麦克风",
      connectionClosed: "与服务器的连接已断开。",
      invitation_not_found: "邀请链接无效。请检查链接，或请会话成员重新发送。",
      invitation_expired: "邀请已过期。请会话成员重新发送链接。",
      invitation_revoked: "邀请已被撤销。请会话成员重新发送链接。",
      invalid_request: "服务器拒绝了请求",
      failed: "出错了",
    },
  };

  const languages = navigator.languages && navigator.languages.length ? navigator.languages : [navigator.language || "en"];
  const lang = String(languages[0]).toLowerCase().startsWith("zh") ? "zh" : "en";
  const t = TEXT[lang];
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";

  const $ = (id) => document.getElementById(id);
  $("title").textContent = t.title;
  $("name-label").textContent = t.nameLabel;
  $("join-button").textContent = t.join;
  $("mute").textContent = t.mute;
  $("camera").textContent = t.cameraOff;
  $("leave").textContent = t.leave;
  document.title = `Hearth · ${t.title}`;

  // The page's state of the call, shown to people in the grid and read by
  // automated tests through `window.hearthGuest`.
  const state = {
    phase: "idle",
    error: null,
    conversationId: null,
    user: null,
    participantId: null,
    participants: [],
    activeSpeaker: null,
    // The room's video codec from the last room_state, such as "VP8", and
    // the outcome of the last switch to it.
    videoCodec: null,
    codecSwitch: null,
    // Every SDP exchanged with the SFU: this page's offer and the SFU's
    // answer at join, then the SFU's offers and this page's answers.
    sdp: { offer: null, answer: null, roomOffers: [], roomAnswers: [] },
  };
  let pc = null;
  let socket = null;
  let localStream = null;
  let audioMuted = false;
  let videoOff = false;
  // Remote track id to the participant id in its stream id (a=msid).
  const trackOwners = new Map();
  const tiles = new Map();
  // Room frames are applied one after another.
  let signalling = Promise.resolve();

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").className = isError ? "error" : "";
  }

  function fail(text) {
    state.phase = "failed";
    state.error = text;
    setStatus(text, true);
  }

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) {
      socket.send(JSON.stringify(Object.assign({ v: PROTOCOL_VERSION }, message)));
    }
  }

  function secretFromAddress() {
    const parts = location.pathname.split("/").filter(Boolean);
    return parts.length >= 2 && parts[0] === "guest" ? decodeURIComponent(parts[1]) : "";
  }

  function describeError(code, message) {
    const known = t[code];
    if (typeof known === "string" && code.startsWith("invitation_")) return known;
    return `${typeof known === "string" ? known : t.failed}: ${message}`;
  }

  async function requestCredential(displayName) {
    const response = await fetch("/api/v1/guest/credentials", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ invitation: secretFromAddress(), display_name: displayName }),
      cache: "no-store",
      referrerPolicy: "no-referrer",
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) {
      throw new Error(describeError(body.code || "failed", body.message || `HTTP ${response.status}`));
    }
    return body;
  }

  function displayName(user) {
    // Guests appear as `guest:<guest id>:<display name>`.
    const match = /^guest:[^:]*:(.*)$/.exec(user);
    return match ? `${match[1]} (${t.guest})` : user;
  }

  function tileFor(key, label) {
    let tile = tiles.get(key);
    if (!tile) {
      const element = document.createElement("div");
      element.className = "tile";
      const video = document.createElement("video");
      video.autoplay = true;
      video.playsInline = true;
      const name = document.createElement("span");
      name.className = "name";
      element.append(video, name);
      $("grid").append(element);
      tile = { element, video, name };
      tiles.set(key, tile);
    }
    if (label !== undefined) tile.name.textContent = label;
    return tile;
  }

  function removeTile(key) {
    const tile = tiles.get(key);
    if (tile) {
      tile.video.srcObject = null;
      tile.element.remove();
      tiles.delete(key);
    }
  }

  function sendViews() {
    const views = state.participants
      .filter((p) => p.id !== state.participantId)
      .map((p) => {
        const tile = tiles.get(String(p.id));
        const ratio = window.devicePixelRatio || 1;
        const width = tile ? Math.round(tile.element.clientWidth * ratio) : 320;
        const height = tile ? Math.round(tile.element.clientHeight * ratio) : 180;
        return { participant_id: p.id, width: Math.max(width, 1), height: Math.max(height, 1) };
      });
    send({ type: "set_room_views", conversation_id: state.conversationId, views });
  }

  function sendMedia() {
    const settings = localStream ? localStream.getVideoTracks()[0].getSettings() : {};
    send({
      type: "set_room_media",
      conversation_id: state.conversationId,
      audio_muted: audioMuted,
      video_off: videoOff,
      video_width: settings.width || 0,
      video_height: settings.height || 0,
    });
  }

  function onRoomState(message) {
    state.participants = message.participants;
    state.activeSpeaker = message.active_speaker ?? null;
    const present = new Set(message.participants.map((p) => String(p.id)));
    for (const key of [...tiles.keys()]) {
      if (key !== "self" && !present.has(key)) removeTile(key);
    }
    for (const p of message.participants) {
      if (p.id === state.participantId) continue;
      tileFor(String(p.id), displayName(p.user));
    }
    for (const [key, tile] of tiles) {
      const id = key === "self" ? state.participantId : Number(key);
      tile.element.classList.toggle("speaking", id !== null && id === state.activeSpeaker);
    }
    if (state.phase === "joined") setStatus(t.inCall(message.participants.length), false);
    sendViews();
    state.videoCodec = message.video_codec ?? null;
    followRoomCodec();
  }

  // The SFU forwards frames as they are, so the page sends its camera in the
  // room's codec. Both codecs were negotiated, so switching the encodings'
  // codec needs no renegotiation.
  function followRoomCodec() {
    if (!state.videoCodec || !pc || state.phase !== "joined") return;
    const sender = pc.getSenders().find((s) => s.track && s.track.kind === "video");
    if (!sender) return;
    const params = sender.getParameters();
    const mimeType = `video/${state.videoCodec}`.toLowerCase();
    const codec = (params.codecs || []).find((c) => c.mimeType.toLowerCase() === mimeType);
    if (!codec || !params.encodings || params.encodings.length === 0) {
      state.codecSwitch = { codec: state.videoCodec, error: `not negotiated: ${JSON.stringify(params.codecs)}` };
      return;
    }
    const current = params.encodings.every((e) => e.codec && e.codec.mimeType.toLowerCase() === mimeType);
    if (current) return;
    for (const encoding of params.encodings) {
      encoding.codec = { mimeType: codec.mimeType, clockRate: codec.clockRate, sdpFmtpLine: codec.sdpFmtpLine };
    }
    const requested = state.videoCodec;
    sender
      .setParameters(params)
      .then(() => {
        state.codecSwitch = { codec: requested, error: null };
      })
      .catch((error) => {
        state.codecSwitch = { codec: requested, error: error.message };
        console.warn(`switching the camera to ${requested} failed: ${error.message}`);
      });
  }

  async function onRoomOffer(sdp) {
    state.sdp.roomOffers.push(sdp);
    await pc.setRemoteDescription({ type: "offer", sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    state.sdp.roomAnswers.push(pc.localDescription.sdp);
    send({ type: "room_answer", conversation_id: state.conversationId, sdp: pc.localDescription.sdp });
  }

  function onFrame(text) {
    let message;
    try {
      message = JSON.parse(text);
    } catch (error) {
      return;
    }
    switch (message.type) {
      case "room_joined":
        state.participantId = message.participant_id;
        state.sdp.answer = message.sdp;
        signalling = signalling
          .then(() => pc.setRemoteDescription({ type: "answer", sdp: message.sdp }))
          .then(() => {
            state.phase = "joined";
            setStatus(t.inCall(Math.max(state.participants.length, 1)), false);
            sendMedia();
            sendViews();
            followRoomCodec();
          })
          .catch((error) => fail(`${t.failed}: ${error.message}`));
        break;
      case "room_offer":
        signalling = signalling.then(() => onRoomOffer(message.sdp)).catch((error) => fail(`${t.failed}: ${error.message}`));
        break;
      case "room_state":
        onRoomState(message);
        break;
      case "room_left":
        state.phase = "left";
        setStatus(`${t.left} ${message.reason}`, false);
        break;
      case "error":
        fail(describeError(message.code, message.message));
        break;
      default:
        break;
    }
  }

  function waitForGathering(connection) {
    if (connection.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        if (connection.iceGatheringState === "complete") {
          connection.removeEventListener("icegatheringstatechange", done);
          resolve();
        }
      };
      connection.addEventListener("icegatheringstatechange", done);
      // The SFU runs ICE lite and learns the browser's address from its
      // connectivity checks, so the offer does not need every candidate.
      setTimeout(resolve, 2000);
    });
  }

  function openSocket(credential) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`wss://${location.host}/api/v1/guest/signal`, ["hearth-guest", credential]);
      ws.onopen = () => resolve(ws);
      ws.onerror = () => reject(new Error(t.connectionClosed));
      ws.onmessage = (event) => onFrame(event.data);
      ws.onclose = () => {
        if (state.phase === "joined" || state.phase === "connecting") {
          state.phase = "closed";
          setStatus(t.connectionClosed, true);
        }
      };
    });
  }

  async function join(name) {
    state.phase = "credential";
    setStatus(t.gettingCredential, false);
    const credential = await requestCredential(name);
    state.conversationId = credential.conversation_id;
    state.user = credential.user;

    state.phase = "devices";
    setStatus(t.openingDevices, false);
    try {
      localStream = await navigator.mediaDevices.getUserMedia({
        audio: true,
        video: { width: { ideal: 1280 }, height: { ideal: 720 }, frameRate: { ideal: 30 } },
      });
    } catch (error) {
      throw new Error(`${t.devicesFailed}: ${error.message}`);
    }
    const self = tileFor("self", `${name} (${t.you})`);
    self.video.muted = true;
    self.video.srcObject = localStream;

    state.phase = "connecting";
    setStatus(t.connecting, false);
    pc = new RTCPeerConnection({ bundlePolicy: "max-bundle", rtcpMuxPolicy: "require" });
    const camera = localStream.getVideoTracks()[0];
    const size = camera.getSettings();
    pc.addTransceiver(camera, {
      direction: "sendonly",
      streams: [localStream],
      sendEncodings: simulcastEncodings(size.width || 1280, size.height || 720),
    });
    pc.addTransceiver(localStream.getAudioTracks()[0], { direction: "sendonly", streams: [localStream] });
    pc.ontrack = (event) => {
      const stream = event.streams[0];
      if (!stream) return;
      trackOwners.set(event.track.id, stream.id);
      const tile = tileFor(stream.id);
      if (tile.video.srcObject !== stream) tile.video.srcObject = stream;
      tile.video.play().catch(() => {});
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === "failed") fail(`${t.failed}: ICE/DTLS ${pc.connectionState}`);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await waitForGathering(pc);
    state.sdp.offer = pc.localDescription.sdp;

    socket = await openSocket(credential.credential);
    send({ type: "join_room", conversation_id: state.conversationId, sdp: pc.localDescription.sdp });
    $("join").style.display = "none";
    $("controls").style.display = "flex";
  }

  function leave() {
    send({ type: "leave_room", conversation_id: state.conversationId });
    if (pc) pc.close();
    if (localStream) localStream.getTracks().forEach((track) => track.stop());
    for (const key of [...tiles.keys()]) removeTile(key);
    state.phase = "left";
    setStatus(t.left, false);
    $("controls").style.display = "none";
  }

  // Per-participant receive counters and per-layer send counters from
  // getStats(), for people debugging a call and for automated tests.
  async function stats() {
    if (!pc) return { inbound: [], outbound: [] };
    const report = await pc.getStats();
    const codecs = new Map();
    report.forEach((entry) => {
      if (entry.type === "codec") codecs.set(entry.id, entry.mimeType);
    });
    const inbound = [];
    const outbound = [];
    report.forEach((entry) => {
      if (entry.type === "inbound-rtp") {
        inbound.push({
          participant: trackOwners.get(entry.trackIdentifier) ?? null,
          kind: entry.kind,
          mid: entry.mid ?? null,
          codec: codecs.get(entry.codecId) ?? null,
          packetsReceived: entry.packetsReceived ?? 0,
          framesDecoded: entry.framesDecoded ?? 0,
          frameWidth: entry.frameWidth ?? 0,
          frameHeight: entry.frameHeight ?? 0,
          totalSamplesReceived: entry.totalSamplesReceived ?? 0,
          concealedSamples: entry.concealedSamples ?? 0,
        });
      } else if (entry.type === "outbound-rtp") {
        outbound.push({
          kind: entry.kind,
          rid: entry.rid ?? null,
          codec: codecs.get(entry.codecId) ?? null,
          packetsSent: entry.packetsSent ?? 0,
          framesEncoded: entry.framesEncoded ?? 0,
          frameWidth: entry.frameWidth ?? 0,
          frameHeight: entry.frameHeight ?? 0,
        });
      }
    });
    return { inbound, outbound };
  }

  $("join").addEventListener("submit", (event) => {
    event.preventDefault();
    $("join-button").disabled = true;
    join($("name").value.trim()).catch((error) => {
      fail(error.message);
      $("join-button").disabled = false;
    });
  });
  $("mute").addEventListener("click", () => {
    audioMuted = !audioMuted;
    localStream.getAudioTracks().forEach((track) => (track.enabled = !audioMuted));
    $("mute").textContent = audioMuted ? t.unmute : t.mute;
    sendMedia();
  });
  $("camera").addEventListener("click", () => {
    videoOff = !videoOff;
    localStream.getVideoTracks().forEach((track) => (track.enabled = !videoOff));
    $("camera").textContent = videoOff ? t.cameraOn : t.cameraOff;
    sendMedia();
  });
  $("leave").addEventListener("click", leave);
  window.addEventListener("resize", () => {
    if (state.phase === "joined") sendViews();
  });

  window.hearthGuest = { state, stats, join: (name) => join(name), leave };
})();

// A ringtone synthesized with WebAudio: two soft chimes, then a pause, repeated.

const PATTERN_SECONDS = 2.4;
const NOTES: [frequency: number, start: number][] = [
  [880, 0],
  [1318.5, 0.22],
  [880, 0.8],
  [1318.5, 1.02],
];

function chime(context: AudioContext, output: AudioNode, frequency: number, at: number): void {
  const oscillator = context.createOscillator();
  const envelope = context.createGain();
  oscillator.type = "sine";
  oscillator.frequency.value = frequency;
  envelope.gain.setValueAtTime(0, at);
  envelope.gain.linearRampToValueAtTime(0.25, at + 0.02);
  envelope.gain.exponentialRampToValueAtTime(0.001, at + 0.5);
  oscillator.connect(envelope).connect(output);
  oscillator.start(at);
  oscillator.stop(at + 0.55);
}

/** Starts ringing and returns a function that stops it. Silent without WebAudio. */
export function startRingtone(): () => void {
  const AudioContextClass = window.AudioContext ?? (window as { webkitAudioContext?: typeof AudioContext }).webkitAudioContext;
  if (!AudioContextClass) return () => {};

  let context: AudioContext;
  try {
    context = new AudioContextClass();
  } catch (error) {
    console.warn("ringtone unavailable", error);
    return () => {};
  }
  const output = context.createGain();
  output.gain.value = 0.6;
  output.connect(context.destination);

  let nextStart = context.currentTime + 0.05;
  const schedule = () => {
    // Keep about one pattern queued ahead of the clock.
    while (nextStart < context.currentTime + PATTERN_SECONDS) {
      for (const [frequency, offset] of NOTES) chime(context, output, frequency, nextStart + offset);
      nextStart += PATTERN_SECONDS;
    }
  };
  schedule();
  const timer = setInterval(schedule, 500);
  void context.resume().catch(() => {});

  return () => {
    clearInterval(timer);
    void context.close().catch(() => {});
  };
}

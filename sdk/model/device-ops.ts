/**
 * Small element-wise steps between two models that would otherwise send a tensor through the
 * host (Lotus: the UNet's x0 latent divided by the VAE's scaling factor before decoding).
 * onnxruntime-node binds a session's GPU outputs to one shape, so each (device, shape) gets a
 * session of its own; the graphs are a few nodes.
 */
import { GraphBuilder } from './onnx/graph.ts';
import { DeviceTensor, Session, type Device } from './runtime.ts';
import { Tensor } from '../core/tensor.ts';

const sessions = new Map<string, Promise<Session>>();

/**
 * A small graph's session on `device` whose `deviceOutputs` stay there, one per `key` (which
 * must name the device, the input shape and the fetched output list: what onnxruntime-node
 * binds on the first run). Built on first use, then shared.
 */
export function boundSession(
  key: string,
  device: Device,
  build: () => GraphBuilder,
  deviceOutputs: readonly string[],
): Promise<Session> {
  let s = sessions.get(key);
  if (!s) {
    s = build()
      .serialize()
      .then((b) => Session.create(b, { device, deviceOutputs }));
    sessions.set(key, s);
  }
  return s;
}

function buildScaleGraph(): GraphBuilder {
  const g = new GraphBuilder();
  const y = g.op('Mul', [g.input('x', ['n', 'c', 'h', 'w']), g.input('factor', [1])]);
  g.output('y', y, ['n', 'c', 'h', 'w']);
  return g;
}

/** x * factor, staying on the device (x is released). */
export async function scaleOnDevice(x: DeviceTensor, factor: number, device: Device): Promise<DeviceTensor> {
  const s = await boundSession(`scale ${device} ${x.shape}`, device, buildScaleGraph, ['y']);
  try {
    const out = await s.runResident({ x, factor: Tensor.from([factor], [1]) }, ['y']);
    return out.y as DeviceTensor;
  } finally {
    x.dispose();
  }
}

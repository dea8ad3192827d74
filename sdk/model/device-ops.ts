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

function scaleSession(device: Device, shape: readonly number[]): Promise<Session> {
  const key = `${device} ${shape}`;
  let s = sessions.get(key);
  if (!s) {
    const g = new GraphBuilder();
    const y = g.op('Mul', [g.input('x', ['n', 'c', 'h', 'w']), g.input('factor', [1])]);
    g.output('y', y, ['n', 'c', 'h', 'w']);
    s = g.serialize().then((b) => Session.create(b, { device, deviceOutputs: ['y'] }));
    sessions.set(key, s);
  }
  return s;
}

/** x * factor, staying on the device (x is released). */
export async function scaleOnDevice(x: DeviceTensor, factor: number, device: Device): Promise<DeviceTensor> {
  const s = await scaleSession(device, x.shape);
  try {
    const out = await s.runResident({ x, factor: Tensor.from([factor], [1]) }, ['y']);
    return out.y as DeviceTensor;
  } finally {
    x.dispose();
  }
}

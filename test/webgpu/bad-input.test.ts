/**
 * Bad input on the GPU path: no adapter is a DeviceError with the cause and the software-Vulkan
 * hint (runs in every mode: it only needs WebGPU to fail), and a tensor beyond the adapter's
 * buffer limits is a DeviceError naming the node and the limit (WebGPU test mode).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GraphBuilder } from '../../sdk/model/onnx/graph.ts';
import { Session, deviceLimitError } from '../../sdk/model/runtime.ts';
import { DeviceError } from '../../sdk/core/errors.ts';
import { Tensor } from '../../sdk/core/tensor.ts';
import { UNet } from '../../sdk/model/unet/index.ts';
import { softwareAdapterOnly } from '../../sdk/model/adapter.ts';
import { readAllSafetensors } from '../../sdk/core/safetensors.ts';
import {
  FIXTURES,
  REFERENCE,
  REPO,
  TEST_DEVICE,
  assertClose,
  rejectsWith,
  runCli,
  tempDir,
} from '../helpers.ts';

describe('WebGPU bad input', function () {
  this.timeout(300_000);

  it('--device webgpu without an adapter: a DeviceError that says why and how to get a software one', () => {
    const r = spawnSync(
      process.execPath,
      [
        join(REPO, 'bin/hyperfeatures.js'),
        'extract',
        '--images',
        join(FIXTURES, 'photos/chelsea.png'),
        '--model',
        join(REFERENCE, 'tiny-sd15'),
        '--steps',
        '1',
        '--device',
        'webgpu',
        '--out',
        tempDir(),
      ],
      { env: { ...process.env, VK_ICD_FILENAMES: '/nonexistent/icd.json' }, encoding: 'utf8' },
    );
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /DeviceError/);
    assert.match(r.stderr, /no Vulkan driver|Vulkan loader/);
    assert.match(r.stderr, /SwiftShader/);
    assert.match(r.stderr, /software-vulkan\.sh/);
  });

  it('onnxruntime errors on limits read as the node, the limit and what to do', () => {
    const msg =
      "Non-zero status code returned while running Add node. Name:'Add_2' Status Message: shader_helper.cc:306 Too many storage buffers in shader. Current: 15, Max is 12";
    const e = deviceLimitError('unet', 'webgpu', msg, { sample: Tensor.zeros([1, 4, 8, 8]) });
    assert.ok(e instanceof DeviceError);
    assert.match(e.message, /node "Add_2" \(Add\)/);
    assert.match(e.message, /maxStorageBufferBindingSize/);
    assert.match(e.message, /15 storage buffers where the adapter allows 12/);
    assert.match(e.message, /sample \[1, 4, 8, 8\]/);
    assert.equal(deviceLimitError('unet', 'cpu', msg), undefined);
    assert.equal(deviceLimitError('unet', 'webgpu', 'some other failure'), undefined);
  });

  it('a 5 GiB activation on the adapter: a DeviceError naming the node and the limit, not a crash or a hang', async function () {
    if (TEST_DEVICE !== 'webgpu') this.skip();
    const g = new GraphBuilder();
    const big = g.op('Expand', [g.input('x', [1]), g.constInt64([5 * 2 ** 28])]);
    g.output('y', g.op('ReduceSum', [g.op('Add', [big, big]), g.constInt64([0])], { keepdims: 0 }), []);
    const s = await Session.create(await g.serialize(), { device: 'webgpu' });
    const e = await rejectsWith(s.run({ x: Tensor.from([1], [1]) }), DeviceError);
    assert.match(e.message, /node "[^"]+"/);
    assert.match(e.message, /maxStorageBufferBindingSize|maxBufferSize|device memory/);
    await s.dispose();
  });

  it('precision fp16: on an adapter without half-precision shaders a DeviceError naming shader-f16; on one with them, the reference within half tolerance', async function () {
    if (TEST_DEVICE !== 'webgpu') this.skip();
    const tiny = join(REFERENCE, 'tiny-sd15');
    const cacheDir = tempDir();
    const env = await runCli(['env']);
    assert.match(
      env.out,
      softwareAdapterOnly()
        ? /webgpu\s+available .*half precision \(--precision fp16\): not on this adapter/
        : /webgpu\s+available .*half precision \(--precision fp16\): supported/,
    );
    if (softwareAdapterOnly()) {
      const e = await rejectsWith(
        UNet.load(tiny, { device: 'webgpu', precision: 'fp16', cacheDir }),
        DeviceError,
      );
      assert.match(e.message, /shader-f16/);
      assert.match(e.message, /SwiftShader/);
      assert.match(e.message, /fp16-emulated.*--device cpu/);
      return;
    }
    // a real GPU: the fp16 graph runs there and lands where the emulation says (test/model/precision.test.ts)
    const unet = await UNet.load(tiny, { device: 'webgpu', precision: 'fp16', cacheDir });
    const { tensors: t } = await readAllSafetensors(join(REFERENCE, 'cases/unet_t261.safetensors'));
    const out = await unet.run({
      sample: t.get('sample')!,
      timestep: 261,
      encoderHiddenStates: t.get('encoder_hidden_states')!,
    });
    assertClose(out.noisePred, t.get('noise_pred')!, 2e-2, 'fp16 on the GPU: noise_pred');
    await unet.dispose();
  });
});

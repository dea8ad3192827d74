/**
 * Where onnxruntime ran each node, read from its profile (one JSON event per kernel call, with
 * the provider and the output types). On a GPU only shape arithmetic may run on the CPU: a CPU
 * node that outputs floating-point values is compute the GPU should have done (and a copy each
 * way), so it is reported.
 */
export interface PlacedNode {
  name: string;
  op: string;
  provider: string;
  /** Output element types ("float", "int64", ...). */
  outputTypes: string[];
}

export interface Placement {
  /** Distinct nodes seen, by provider. */
  byProvider: Record<string, number>;
  /** CPU nodes with only integer or boolean outputs: shape computations. */
  cpuShapeNodes: PlacedNode[];
  /** CPU nodes with a floating-point output: compute that left the device. */
  cpuComputeNodes: PlacedNode[];
}

const FLOAT_TYPES = new Set(['float', 'double', 'float16', 'bfloat16']);

interface ProfileEvent {
  cat?: string;
  name?: string;
  args?: { op_name?: string; provider?: string; output_type_shape?: Record<string, unknown>[] };
}

/** Node placement from an onnxruntime profile's events (the parsed JSON array). */
export function placementFromProfile(events: readonly ProfileEvent[]): Placement {
  const nodes = new Map<string, PlacedNode>();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name?.endsWith('_kernel_time') || !e.args?.provider) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    nodes.set(name, {
      name,
      op: e.args.op_name ?? '?',
      provider: e.args.provider.replace(/ExecutionProvider$/, ''),
      outputTypes: (e.args.output_type_shape ?? []).flatMap((o) => Object.keys(o)),
    });
  }
  const byProvider: Record<string, number> = {};
  const cpuShapeNodes: PlacedNode[] = [];
  const cpuComputeNodes: PlacedNode[] = [];
  for (const n of nodes.values()) {
    byProvider[n.provider] = (byProvider[n.provider] ?? 0) + 1;
    if (n.provider !== 'CPU') continue;
    (n.outputTypes.some((t) => FLOAT_TYPES.has(t)) ? cpuComputeNodes : cpuShapeNodes).push(n);
  }
  return { byProvider, cpuShapeNodes, cpuComputeNodes };
}

/** One line per CPU compute node ("Sin time/Sin_5 -> double"), for messages and reports. */
export function describeCpuNodes(nodes: readonly PlacedNode[]): string {
  return nodes.map((n) => `${n.op} ${n.name} -> ${n.outputTypes.join(', ')}`).join('\n');
}

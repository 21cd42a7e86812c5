// The member nemesis's work: replace one node by a new member while clients run, as an operator
// replacing a machine would. Cluster.MemberRemove (through another member), stop the process,
// wipe its data, Cluster.MemberAdd of a new peer URL, start it with --initial-cluster-state
// existing. Every step is retried; a replacement cut short is finished when the nemesis heals.
import type { ProcessCluster } from './cluster.ts';
import { toCallError } from './client.ts';
import type { EtcdClient, MemberInfo } from './client.ts';
import { sleep } from './workloads/common.ts';

/** Attempts at one membership change before giving up (each through the next member). */
const MEMBER_CHANGE_ATTEMPTS = 12;
/** Deadline of one MemberRemove/MemberAdd call (the server waits up to its request timeout, 7 s). */
const MEMBER_CHANGE_TIMEOUT_MS = 9_000;
/** How long a removed member gets to notice its removal and stop itself before it is killed. */
const SELF_STOP_GRACE_MS = 3_000;
/** How long a new member gets to catch up and serve before the fault counts as over anyway. */
const JOIN_TIMEOUT_MS = 30_000;

export class MemberReplacer {
  /**
   * Slots whose member was removed and whose new member is not added yet: `removed` (the old
   * process may still exist), `prepared` (stopped, data wiped, new peer URL chosen).
   */
  private readonly pendingAdd = new Map<number, 'removed' | 'prepared'>();

  /** `memberIds[i]` is the ID of slot i's member; a replacement writes the new ID into it. */
  constructor(
    private readonly cluster: ProcessCluster,
    private readonly clients: EtcdClient[],
    private readonly memberIds: string[],
    private readonly log: (line: string) => void,
  ) {}

  isPending(i: number): boolean {
    return this.pendingAdd.has(i);
  }

  /** Removes slot i's member, waits `holdMs` with one member fewer, then adds and starts its replacement. */
  async replace(i: number, holdMs: number): Promise<string> {
    const oldName = this.cluster.nodes[i].memberName;
    this.cluster.expectExit(i); // it stops itself once it learns it was removed
    try {
      await this.remove(i);
    } catch (error) {
      this.cluster.expectExit(i, false);
      throw error;
    }
    this.pendingAdd.set(i, 'removed');
    const stopped = await this.cluster.waitExit(i, SELF_STOP_GRACE_MS);
    this.log(
      `nemesis: ${oldName} removed${stopped === null ? ' (still running: killed)' : `; it stopped itself (exit code ${stopped.code})`}`,
    );
    const { name, peerUrl } = await this.prepare(i);
    await sleep(holdMs);
    await this.addAndStart(i);
    const serving = await this.cluster.waitServing(i, JOIN_TIMEOUT_MS);
    this.log(
      `nemesis: ${name} (${peerUrl}) joined as member ${this.memberIds[i]}${serving ? ' and serves' : `, not serving after ${JOIN_TIMEOUT_MS} ms`}`,
    );
    return `${oldName} -> ${name}`;
  }

  /** Adds back every slot whose replacement was cut short (the nemesis heals). */
  async completePending(): Promise<void> {
    for (const i of [...this.pendingAdd.keys()]) await this.addAndStart(i);
  }

  /** Stops slot i's removed member for good and makes the slot a new member-to-be. */
  private async prepare(i: number): Promise<{ name: string; peerUrl: string }> {
    await this.cluster.kill(i);
    const prepared = await this.cluster.prepareReplacement(i);
    this.pendingAdd.set(i, 'prepared');
    return prepared;
  }

  private async addAndStart(i: number): Promise<void> {
    if (this.pendingAdd.get(i) === 'removed') await this.prepare(i);
    await this.add(i);
    this.pendingAdd.delete(i);
    this.cluster.launch(i);
  }

  private async remove(i: number): Promise<void> {
    const id = this.memberIds[i];
    let last = '';
    for (let attempt = 0; attempt < MEMBER_CHANGE_ATTEMPTS; attempt++) {
      const via = this.via(i, attempt);
      try {
        await this.clients[via].memberRemove(id, MEMBER_CHANGE_TIMEOUT_MS);
        return;
      } catch (error) {
        last = toCallError(error).message;
        if (last.includes('member not found')) return; // an earlier attempt whose answer was lost
      }
      // An attempt whose outcome is unknown may have landed: look before asking again.
      if ((await this.find(i, (m) => m.id === id)) === false) return;
      await sleep(500);
    }
    throw new Error(`could not remove member ${id} (${this.cluster.nodes[i].memberName}): ${last}`);
  }

  private async add(i: number): Promise<void> {
    const peerUrl = this.cluster.peerUrl(i);
    let last = '';
    for (let attempt = 0; attempt < MEMBER_CHANGE_ATTEMPTS; attempt++) {
      const via = this.via(i, attempt);
      try {
        this.memberIds[i] = (await this.clients[via].memberAdd([peerUrl], MEMBER_CHANGE_TIMEOUT_MS)).id;
        return;
      } catch (error) {
        last = toCallError(error).message;
      }
      // Already added by an attempt whose answer was lost ("Peer URLs already exists", a timeout)?
      const found = await this.find(i, (m) => m.peerUrls.includes(peerUrl));
      if (found !== null && found !== false) {
        this.memberIds[i] = found.id;
        return;
      }
      await sleep(500);
    }
    throw new Error(`could not add ${peerUrl} (${this.cluster.nodes[i].memberName}): ${last}`);
  }

  /**
   * The member matching `match` as a member other than slot i lists it (linearizably), false if
   * there is none, null if no member answered.
   */
  private async find(i: number, match: (m: MemberInfo) => boolean): Promise<MemberInfo | false | null> {
    for (let attempt = 0; attempt < this.cluster.nodes.length; attempt++) {
      try {
        const members = await this.clients[this.via(i, attempt)].memberList(3_000);
        return members.find(match) ?? false;
      } catch {
        // ask the next one
      }
    }
    return null;
  }

  /** A node other than i to send a request through, rotating with the attempt; live ones first. */
  private via(i: number, attempt: number): number {
    const others = this.cluster.nodes.map((_, j) => j).filter((j) => j !== i);
    const alive = others.filter((j) => this.cluster.isAlive(j) && !this.cluster.nodes[j].paused);
    const pool = alive.length > 0 ? alive : others;
    return pool[attempt % pool.length];
  }
}

/**
 * A sleeping ring end's check for a lost wake-up (Node 20's Atomics.waitAsync has been seen
 * never to settle after a notify). What the end waits for being there at one check proves
 * nothing: its wake-up may be microseconds away. There at two checks in a row during the same
 * wait, the wake-up was lost, and the end goes on by itself.
 */
export class LostWakeupCheck {
  /** The wait a check found with what it waits for already there; -1 for none. */
  private suspectedWait = -1;
  /** Wake-ups taken as lost so far. */
  count = 0;

  /**
   * One check. `stuck`: the end still waits although what it waits for is there; `waitId` names
   * the current wait. True when the same wait was stuck at the previous check too (counted).
   */
  isLost(stuck: boolean, waitId: number): boolean {
    if (!stuck) {
      this.suspectedWait = -1;
      return false;
    }
    if (this.suspectedWait !== waitId) {
      this.suspectedWait = waitId;
      return false;
    }
    this.suspectedWait = -1;
    this.count++;
    return true;
  }
}

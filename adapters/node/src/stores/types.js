/**
 * The contract every store driver meets. Offsets are assigned by the store, atomically
 * (OFF-1, PUB-4); a read returns one consistent state with its messages (HIS-5).
 *
 * @typedef {import('../core/resolve.js').ChannelState} ChannelState
 * @typedef {import('../core/batching.js').Message} Message
 * @typedef {import('../core/retention.js').RetentionSettings} RetentionSettings
 * @typedef {import('../core/grants.js').Grant} Grant
 * @typedef {{channel: string, from?: number|'beginning'|'latest', epoch?: string, allow_truncation?: boolean}} AutoSubscription
 * @typedef {{session_id: string, client_id: string, grants: Grant[], subscribe: AutoSubscription[],
 *   expires_at: number, token_hash: string, generation: string}} Session
 *   `generation` names one life of a session: cursors hang on it, so a session deleted or
 *   expired and registered again starts without them (SES-16, SES-17).
 * @typedef {{epoch: string, offset: number, id: string, duplicate: boolean}} Appended
 *
 * @typedef {object} Store
 * @property {boolean} durable what `info.durable` reports (INF-4)
 * @property {boolean} cluster whether several processes may share this store
 * @property {() => Promise<void>} connect
 * @property {(channel: string, now: number) => Promise<ChannelState>} state
 * @property {(channel: string, msg: {data: unknown, id?: string}, opts: {now: number, windowMs: number}) => Promise<Appended>} append
 * @property {(channel: string, from: number, limit: number, now: number) => Promise<ChannelState & {messages: Message[]}>} read
 * @property {(channel: string, update: Partial<RetentionSettings>, now: number) => Promise<RetentionSettings>} setRetention
 * @property {(record: Session, now: number) => Promise<{created: boolean, session: Session}>} upsertSession
 * @property {(sessionId: string, now: number) => Promise<Session|null>} session
 * @property {(tokenHash: string, now: number) => Promise<Session|null>} sessionByTokenHash
 * @property {(sessionId: string, now: number) => Promise<boolean>} deleteSession
 * @property {(generation: string, channel: string) => Promise<{epoch: string, offset: number}|null>} cursor
 * @property {(generation: string, channel: string, epoch: string, offset: number) => Promise<{epoch: string, offset: number}>} ack
 * @property {(fn: (channel: string) => void) => void} onAppend called on every node for every append
 * @property {(fn: (sessionId: string) => void) => void} onSession called on every node when a session changes
 * @property {() => Promise<void>} close
 */
export {};

/** @template {Record<string, any>} Events */
export class Emitter<Events extends Record<string, any>> {
    /** @type {Map<keyof Events, Set<(data: any) => void>>} */
    _handlers: Map<keyof Events, Set<(data: any) => void>>;
    /**
     * Call `handler` with each `name` event's data.
     * @template {keyof Events} K
     * @param {K} name
     * @param {(data: Events[K]) => void} handler
     * @returns {this}
     */
    on<K extends keyof Events>(name: K, handler: (data: Events[K]) => void): this;
    /**
     * Stop calling `handler`.
     * @template {keyof Events} K
     * @param {K} name
     * @param {(data: Events[K]) => void} handler
     * @returns {this}
     */
    off<K extends keyof Events>(name: K, handler: (data: Events[K]) => void): this;
    /**
     * Call every handler of `name`; a handler that throws does not stop the others.
     * @template {keyof Events} K
     * @param {K} name
     * @param {Events[K]} data
     */
    emit<K extends keyof Events>(name: K, data: Events[K]): void;
}

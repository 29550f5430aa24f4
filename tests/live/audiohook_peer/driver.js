#!/usr/bin/env node
// Drives Genesys's AudioHook reference client library (a prepared copy of
// ../shared/audiohook-reference, see README.md here) against a real server and reports, as JSON on
// stdout, everything a test needs to judge the server: every message each way, the HTTP answer to
// the upgrade, the WebSocket close (code, who closed), and every problem the library reported.
//
//   node driver.js PLAN.json
//
// PLAN: {peer, uri, apiKey, clientSecret (base64 or null), audio (raw PCMU, stereo interleaved,
// 8 kHz: external = customer first, internal = agent), speed (1 = real time), scenarios: [{name,
// sessions: [SESSION, ...]}]}. The scenarios run concurrently; each one's sessions run one after
// the other, sharing a conversation id. SESSION (every field optional):
//   startAt     seconds: where in the recording (and the stream's timeline) it starts
//   stopAt      seconds: stop there with close {reason: closeReason} (default: end of the audio)
//   closeReason close reason at stopAt (default "end")
//   pause       [at, seconds]: paused at `at`, no audio, resumed `seconds` later (the timeline
//               goes on during the pause, as the reference's own sources count it)
//   discard     [at, seconds]: at `at`, skip `seconds` of the recording and send `discarded`
//   seqGapAt    seconds: there, skip one seq number (a lost message) and send a ping
//   probe       true: a connection probe (all-zero conversation and participant ids, no audio)
//   continues   true: open with continuedSessions naming the scenario's previous session
//   clientSecret  overrides the plan's (base64; null: unsigned)
//   timeout     seconds before the driver gives up on the session (default 120)
'use strict';

const fs = require('fs');
const path = require('path');
const { EventEmitter } = require('events');
const { randomUUID } = require('crypto');

const plan = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const peer = path.resolve(plan.peer);

// The library is TypeScript: transpile it on load (no type check: seconds, not a minute).
require(path.join(peer, 'node_modules', 'ts-node')).register({
    transpileOnly: true,
    project: path.join(peer, 'app', 'tsconfig.json'),
});
const lib = require(path.join(peer, 'app', 'audiohook'));
// The reference client's own WebSocket factory: it signs the upgrade exactly as Genesys does.
const { createClientWebSocket } = require(path.join(peer, 'client', 'src', 'clientwebsocket'));

const RATE = 8000;
const FRAME_MS = 200; // the reference client's frame
const SAMPLES_PER_FRAME = (RATE * FRAME_MS) / 1000;
const ZERO_UUID = '00000000-0000-0000-0000-000000000000';
const OFFERED = [['external', 'internal'], ['external'], ['internal']].map((channels) => ({
    type: 'audio', format: 'PCMU', channels, rate: RATE,
}));
const audio = fs.readFileSync(plan.audio); // 2 bytes (external, internal) per sample
const totalSamples = Math.floor(audio.length / 2);
const started = process.hrtime.bigint();
const now = () => Number(process.hrtime.bigint() - started) / 1e9;

/** A MediaSource (the library's interface) over the recording, paced `speed` times real time. */
class RecordingSource extends EventEmitter {
    constructor(opts, hook) {
        super();
        this.offeredMedia = OFFERED;
        this.selectedMedia = null;
        this.state = 'PREPARING';
        this.timelinePos = Math.round((opts.startAt ?? 0) * RATE); // samples: the stream position
        this.filePos = this.timelinePos; // samples: where in the recording
        this.endPos = Math.min(totalSamples, opts.probe ? this.filePos : totalSamples);
        this.pauseStart = 0;
        this.timer = null;
        this.hook = hook; // called before each frame: the scenario's actions
        this.speed = plan.speed ?? 1;
    }

    get position() {
        return lib.StreamDuration.fromSamples(this.timelinePos, RATE);
    }

    startStreaming(selectedMedia, discardTo, startPaused) {
        this.selectedMedia = selectedMedia;
        if (discardTo) this.discard(Math.max(0, discardTo.seconds - this.position.seconds));
        this.state = startPaused ? 'PAUSED' : 'STREAMING';
        if (startPaused) this.pauseStart = this.timelinePos;
        setImmediate(() => this.tick());
        this.timer = setInterval(() => this.tick(), FRAME_MS / this.speed);
    }

    tick() {
        if (this.state !== 'STREAMING' && this.state !== 'PAUSED') return;
        this.hook(this);
        if (this.state === 'PAUSED') {
            this.timelinePos += SAMPLES_PER_FRAME; // on hold: time passes, nothing is sent
            return;
        }
        if (this.state !== 'STREAMING') return; // the hook closed the session
        const n = Math.min(SAMPLES_PER_FRAME, this.endPos - this.filePos);
        if (n > 0 && this.selectedMedia) {
            const frame = audio.subarray(this.filePos * 2, (this.filePos + n) * 2);
            const channels = this.selectedMedia.channels;
            let data = frame;
            if (channels.length === 1) {
                const offset = channels[0] === 'external' ? 0 : 1;
                data = Buffer.alloc(n);
                for (let i = 0; i < n; i++) data[i] = frame[2 * i + offset];
            }
            this.emit('audio', new Uint8Array(data));
        }
        this.filePos += Math.max(0, n);
        this.timelinePos += Math.max(0, n);
        if (this.filePos >= this.endPos) this.end();
    }

    end() {
        if (this.timer) clearInterval(this.timer);
        this.timer = null;
        if (this.state === 'STREAMING' || this.state === 'PAUSED') {
            this.state = 'END';
            this.emit('end', this.position);
        }
    }

    pause() {
        if (this.state !== 'STREAMING') return;
        this.state = 'PAUSED';
        this.pauseStart = this.timelinePos;
        this.emit('paused');
    }

    resume() {
        if (this.state !== 'PAUSED') return;
        this.state = 'STREAMING';
        const start = lib.StreamDuration.fromSamples(this.pauseStart, RATE);
        const skipped = lib.StreamDuration.fromSamples(this.timelinePos - this.pauseStart, RATE);
        this.emit('resumed', start, skipped);
    }

    discard(seconds) {
        const skipped = Math.min(Math.round(seconds * RATE), this.endPos - this.filePos);
        if (skipped <= 0) return;
        const start = this.position;
        this.filePos += skipped;
        this.timelinePos += skipped;
        this.emit('discarded', start, lib.StreamDuration.fromSamples(skipped, RATE));
    }

    async close() {
        if (this.timer) clearInterval(this.timer);
        this.timer = null;
        if (this.state !== 'CLOSED') {
            this.state = 'CLOSED';
            this.emit('closed');
        }
        this.removeAllListeners();
    }
}

/** The library's Logger: kept, and anything at warn or above is a problem the test sees. */
function makeLogger(report) {
    const at = (level) => (msg) => {
        if (level === 'debug' || level === 'trace') return;
        const entry = { t: now(), level, msg: String(msg).slice(0, 2000) };
        report.log.push(entry);
        if (level === 'warn' || level === 'error' || level === 'fatal') report.problems.push(entry);
    };
    return {
        fatal: at('fatal'), error: at('error'), warn: at('warn'),
        info: at('info'), debug: at('debug'), trace: at('trace'),
    };
}

/** The reference factory's WebSocket, watched: upgrade answer, frames both ways, the close. */
function watchedWebSocketFactory(report) {
    return (options) => {
        const ws = createClientWebSocket(options);
        report.requestHeaders = Object.keys(ws._req?.getHeaders?.() ?? {});
        ws.on('upgrade', (res) => {
            report.upgrade = { status: res.statusCode, headers: res.headers };
        });
        ws.on('unexpected-response', (req, res) => {
            report.upgrade = { status: res.statusCode, headers: res.headers, body: '' };
            res.setEncoding('utf8');
            res.on('data', (chunk) => { report.upgrade.body += chunk; });
            res.on('end', () => ws.terminate()); // refused: no WebSocket
        });
        ws.on('open', () => { report.wsOpened = true; });
        ws.on('error', (err) => { report.wsErrors.push({ t: now(), msg: String(err.message) }); });
        ws.on('message', (data, isBinary) => {
            if (isBinary) {
                report.receivedBinary += data.length;
                return;
            }
            const text = Buffer.from(data).toString('utf8');
            let msg;
            try { msg = JSON.parse(text); } catch { msg = { unparsed: text.slice(0, 500) }; }
            report.received.push({ t: now(), msg });
        });
        ws.on('close', (code, reason) => {
            report.close = {
                code, reason: String(reason ?? ''), initiator: report.closeInitiator, t: now(),
            };
        });
        const send = ws.send.bind(ws);
        ws.send = (data, ...rest) => {
            if (typeof data === 'string') {
                // with the audio sent before it: what went out between two messages shows
                report.sent.push({ t: now(), msg: JSON.parse(data), audioBytes: report.audio.bytes });
            } else {
                report.audio.frames += 1;
                report.audio.bytes += data.length;
            }
            return send(data, ...rest);
        };
        const close = ws.close.bind(ws);
        ws.close = (...args) => {
            // ws calls close() itself once the peer's close frame arrived: then the server closed
            report.closeInitiator ??= ws._closeFrameReceived ? 'server' : 'client';
            return close(...args);
        };
        return ws;
    };
}

/** One AudioHook session to its end; resolves with its report. */
function runSession(spec, ctx) {
    const sessionId = randomUUID();
    const report = {
        sessionId, conversationId: ctx.conversationId, participantId: ctx.participantId,
        upgrade: null, wsOpened: false, requestHeaders: [], sent: [], received: [],
        receivedBinary: 0, audio: { frames: 0, bytes: 0 }, close: null, closeInitiator: null,
        wsErrors: [], log: [], problems: [], state: null, timedOut: false,
    };
    const secret = 'clientSecret' in spec ? spec.clientSecret : plan.clientSecret;
    let session = null;
    const done = { pause: false, resume: false, discard: false, gap: false, stop: false };
    const hook = (source) => {
        const pos = source.position.seconds;
        if (spec.pause && !done.pause && pos >= spec.pause[0] - 1e-9) {
            done.pause = true;
            source.pause();
        } else if (spec.pause && done.pause && !done.resume
                   && pos >= spec.pause[0] + spec.pause[1] - 1e-9) {
            done.resume = true;
            source.resume();
        }
        if (spec.discard && !done.discard && pos >= spec.discard[0] - 1e-9) {
            done.discard = true;
            source.discard(spec.discard[1]);
        }
        if (spec.seqGapAt !== undefined && !done.gap && pos >= spec.seqGapAt - 1e-9) {
            done.gap = true;
            session.seq += 1; // the message numbered seq+1 is "lost"
            session.sendMessage(session.buildMessage('ping', {}));
        }
        if (spec.stopAt !== undefined && !done.stop && pos >= spec.stopAt - 1e-9) {
            done.stop = true;
            // the library's own close transaction, with the reason Genesys uses before reconnecting
            session.initiateClose(spec.closeReason ?? 'end');
        }
    };
    const source = new RecordingSource(spec, hook);
    const previous = ctx.previous;
    return new Promise((resolve) => {
        session = lib.createClientSession({
            uri: plan.uri,
            mediaSource: source,
            organizationId: ctx.organizationId,
            sessionId,
            conversationId: spec.probe ? ZERO_UUID : ctx.conversationId,
            participant: spec.probe
                ? { id: ZERO_UUID, ani: '', aniName: '', dnis: '' }
                : { id: ctx.participantId, ani: '+1-555-555-1234', aniName: 'John Doe',
                    dnis: '+1-800-555-6789' },
            languageParam: 'en-US',
            createWebSocket: watchedWebSocketFactory(report),
            openParameterProvider: (s, partial) => {
                const params = { ...partial };
                if (spec.continues && previous) {
                    params.continuedSessions = [{
                        id: previous.sessionId, serverseq: previous.serverseq,
                        clientseq: previous.clientseq,
                    }];
                }
                return params;
            },
            logger: makeLogger(report),
            authInfo: {
                apiKey: plan.apiKey,
                clientSecret: secret ? Buffer.from(secret, 'base64') : null,
            },
        });
        const timer = setTimeout(() => {
            report.timedOut = true;
            finish();
        }, (spec.timeout ?? 120) * 1000);
        function finish() {
            clearTimeout(timer);
            report.state = session.state;
            report.serverseq = session.serverseq;
            report.clientseq = session.seq;
            const positions = report.sent.map((e) => e.msg.position).filter(Boolean);
            report.lastPosition = positions.length ? positions[positions.length - 1] : null;
            if (report.timedOut) source.close();
            resolve(report);
        }
        session.once('disconnected', finish);
    });
}

async function runScenario(scenario) {
    const ctx = {
        organizationId: randomUUID(), conversationId: randomUUID(), participantId: randomUUID(),
        previous: null,
    };
    const sessions = [];
    for (const spec of scenario.sessions) {
        const report = await runSession(spec, ctx);
        sessions.push(report);
        ctx.previous = {
            sessionId: report.sessionId, serverseq: report.serverseq, clientseq: report.clientseq,
        };
    }
    return { name: scenario.name, sessions };
}

async function main() {
    const results = await Promise.all(plan.scenarios.map((s) => runScenario(s).catch((err) => ({
        name: s.name, crashed: String(err && err.stack || err),
    }))));
    const out = {};
    for (const r of results) out[r.name] = r;
    process.stdout.write(JSON.stringify(out));
    process.exit(0);
}

main();

"""Genesys's reference library (``../shared/audiohook-reference``) as a signing peer: its
``SignatureBuilder`` signs as the reference client does and ``verifySignature`` checks as the
reference server does, run under Node on a list of tasks.

The library is loaded from the peer ``.ci/install`` prepares (``tools.system_assets
.audiohook_peer``); without one, the shared copy is copied to a temporary folder and ``npm ci``
installs its client's dependencies there (TypeScript, which transpiles the library as it loads).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from tools import shared_assets, system_assets

__all__ = ["prepared_peer", "run_peer"]

DRIVER = r"""
// Runs Genesys's httpsignature library (TypeScript, transpiled on require) on tasks from stdin.
const fs = require('fs');
const { typescript, library, tasks } = JSON.parse(fs.readFileSync(0, 'utf8'));
const ts = require(typescript);
require.extensions['.ts'] = (module, filename) => {
    const source = fs.readFileSync(filename, 'utf8');
    const out = ts.transpileModule(source, { fileName: filename, compilerOptions: {
        module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2020, esModuleInterop: true } });
    module._compile(out.outputText, filename);
};
const hs = require(library);

// as the reference client signs (client/src/clientwebsocket.ts)
const sign = ({ url, apiKey, secret, organizationId, sessionId, correlationId }) => {
    const u = new URL(url);
    return {
        'Audiohook-Organization-Id': organizationId,
        'Audiohook-Session-Id': sessionId,
        'Audiohook-Correlation-Id': correlationId,
        'X-API-KEY': apiKey,
        ...new hs.SignatureBuilder()
            .addComponent('@request-target', u.pathname + u.search)
            .addComponent('@authority', u.host)
            .addComponent('audiohook-organization-id', organizationId)
            .addComponent('audiohook-session-id', sessionId)
            .addComponent('audiohook-correlation-id', correlationId)
            .addComponent('x-api-key', apiKey)
            .createSignature({ keyid: apiKey, key: Buffer.from(secret, 'base64') }),
    };
};

// as the reference server verifies (app/src/authenticator.ts)
const verify = ({ headers, requestTarget, secret }) => {
    const apiKey = hs.queryCanonicalizedHeaderField(headers, 'x-api-key');
    return hs.verifySignature({
        headerFields: headers,
        requiredComponents: ['@request-target', '@authority', 'audiohook-organization-id',
            'audiohook-session-id', 'audiohook-correlation-id', 'x-api-key'],
        maxSignatureAge: 10,
        derivedComponentLookup: (name) => (name === '@request-target' ? requestTarget : null),
        keyResolver: (p) => {
            if (!p.nonce || p.nonce.length < 22) return hs.withFailure('PRECONDITION', 'nonce');
            if (p.keyid !== apiKey) return hs.withFailure('PRECONDITION', 'keyid mismatch');
            return { code: 'GOODKEY', key: Buffer.from(secret, 'base64') };
        },
    });
};

(async () => {
    const results = [];
    for (const t of tasks) results.push(t.op === 'sign' ? sign(t) : await verify(t));
    process.stdout.write(JSON.stringify(results));
})();
"""


def _typescript(root: Path) -> Path | None:
    for sub in ("client", "app", "."):
        found = root / sub / "node_modules" / "typescript"
        if (found / "package.json").is_file():
            return found
    return None


def prepared_peer(scratch: Path) -> tuple[Path, Path]:
    """The reference implementation's folder and the TypeScript that loads it; ``scratch``
    holds a fresh copy when no prepared peer is there."""
    try:
        root = system_assets.audiohook_peer()
        ts = _typescript(root)
        if ts is not None:
            return root, ts
    except system_assets.MissingSystemAsset:
        pass
    root = scratch / "audiohook-reference"
    shutil.copytree(shared_assets.shared_root() / "audiohook-reference", root)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)  # the shared copy is read-only
    npm = shutil.which("npm")
    assert npm is not None, "npm not found: install the Debian packages nodejs and npm"
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=root / "client", check=True,
                   capture_output=True, timeout=600)  # fmt: skip
    ts = _typescript(root)
    assert ts is not None, f"npm ci in {root / 'client'} installed no TypeScript"
    return root, ts


def run_peer(peer: tuple[Path, Path], tasks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each task's result: ``{"op": "sign", url, apiKey, secret, organizationId, sessionId,
    correlationId}`` gives the upgrade's headers, ``{"op": "verify", headers (lowercase names),
    requestTarget, secret}`` the reference server's verdict (``code``, ``reason``)."""
    root, ts = peer
    node = shutil.which("node")
    assert node is not None, "node not found: install the Debian package nodejs"
    library = root / "app" / "audiohook" / "src" / "httpsignature" / "index.ts"
    request = {"typescript": str(ts), "library": str(library), "tasks": tasks}
    done = subprocess.run([node, "-e", DRIVER], input=json.dumps(request), text=True,
                          capture_output=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results

// Test-only oracle: real nunjucks set up the way Backstage's scaffolder sets it up, so envforge's
// Python rendering can be compared with it byte for byte. Written from Backstage's documented
// and observed behaviour (SecureTemplater, NunjucksWorkflowRunner.render, fetch:template's file
// loop, the built-in filters); nunjucks, globby, isbinaryfile and yaml are the real packages at
// the versions Backstage's scaffolder resolves.
//
// Protocol: one JSON request per line on stdin, one JSON answer per line on stdout:
//   {"op": "render", "template": "...", "context": {...}, "compat": false,
//    "trimBlocks": false, "lstripBlocks": false}              -> {"ok": true, "result": "..."}
//   {"op": "renderValue", "value": <json>, "context": {...}} -> {"ok": true, "result": <json>}
//     (a value Backstage drops comes back as {"$undefined": true})
//   {"op": "renderTree", "src": DIR, "out": DIR, "input": {...fetch:template input}}
//   {"op": "runTemplate", "template": FILE, "parameters": {...}, "user": {...},
//    "outputs": {"stepId": {...}}, "workspace": DIR}         -> {"ok": true, "result": {...}}
// Errors: {"ok": false, "error": "one line"}.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const readline = require('readline');
const nunjucks = require('nunjucks');
const globby = require('globby');
const { isBinaryFileSync } = require('isbinaryfile');
const YAML = require('yaml');

// --- Backstage's built-in filters (host side; results cross the isolate as JSON) ----------

const INTEGRATION_TYPES = {
  'github.com': 'github', 'gitlab.com': 'gitlab', 'bitbucket.org': 'bitbucketCloud',
  'dev.azure.com': 'azure',
};

function parseRepoUrl(repoUrl) {
  let parsed;
  try {
    parsed = new URL(`https://${repoUrl}`);
  } catch (error) {
    throw new Error(`Invalid repo URL passed to publisher, got ${repoUrl}, ${error}`);
  }
  const host = parsed.host;
  const get = name => (parsed.searchParams.has(name)
    ? parsed.searchParams.get(name).replace(/^\/+|\/+$/g, '') : undefined);
  const [owner, organization, workspace, project, repo] =
    ['owner', 'organization', 'workspace', 'project', 'repo'].map(get);
  const type = INTEGRATION_TYPES[host] || 'github';
  const need = (...names) => {
    for (const n of names) {
      if (!parsed.searchParams.get(n)) {
        throw new Error(`Invalid repo URL passed to publisher: ${parsed.toString()}, missing ${n}`);
      }
    }
  };
  if (type === 'bitbucketCloud') need('workspace', 'project', 'repo');
  else if (type === 'azure') need('project', 'repo');
  else if (type === 'gitlab') { if (!project) need('owner', 'repo'); }
  else need('repo', 'owner');
  return { host, owner, repo, organization, workspace, project };
}

function parseEntityRef(ref, context) {
  if (!ref) throw new Error('Entity reference must not be empty');
  const defaultKind = context && context.defaultKind;
  const defaultNamespace = (context && context.defaultNamespace) || 'default';
  let kind; let namespace; let name;
  if (typeof ref === 'string') {
    let colon = ref.indexOf(':');
    const slash = ref.indexOf('/');
    if (slash !== -1 && slash < colon) colon = -1;
    const k = colon === -1 ? undefined : ref.slice(0, colon);
    const ns = slash === -1 ? undefined : ref.slice(colon + 1, slash);
    name = ref.slice(Math.max(colon + 1, slash + 1));
    if (k === '' || ns === '' || name === '') {
      throw new TypeError(`Entity reference "${ref}" was not on the form [<kind>:][<namespace>/]<name>`);
    }
    kind = k === undefined ? defaultKind : k;
    namespace = ns === undefined ? defaultNamespace : ns;
  } else {
    kind = ref.kind === undefined ? defaultKind : ref.kind;
    namespace = ref.namespace === undefined ? defaultNamespace : ref.namespace;
    name = ref.name;
  }
  if (!kind) {
    throw new Error(`Entity reference ${JSON.stringify(ref)} had missing or empty kind (e.g. did not start with "component:" or similar)`);
  } else if (!namespace) {
    throw new Error(`Entity reference ${JSON.stringify(ref)} had missing or empty namespace`);
  } else if (!name) {
    throw new Error(`Entity reference ${JSON.stringify(ref)} had missing or empty name`);
  }
  return { kind, namespace, name };
}

function lodashGet(obj, key) {
  if (obj === null || obj === undefined) return undefined;
  const keys = Array.isArray(key) ? key
    : String(key).replace(/\[(?:'([^']*)'|"([^"]*)"|([^\]]*))\]/g, '.$1$2$3').split('.')
      .filter((p, i) => p !== '' || i > 0);
  let cur = obj;
  for (const k of keys) {
    if (cur === null || cur === undefined) return undefined;
    cur = cur[k];
  }
  return cur;
}

const FILTERS = {
  parseRepoUrl: url => parseRepoUrl(url),
  parseEntityRef: (ref, context) => parseEntityRef(ref, context),
  pick: (obj, key) => lodashGet(obj, key),
  projectSlug: repoUrl => {
    const { owner, repo } = parseRepoUrl(repoUrl);
    return `${owner}/${repo}`;
  },
};

// --- SecureTemplater ----------------------------------------------------------------------

function makeEnv(compat, trimBlocks, lstripBlocks) {
  const env = new nunjucks.Environment(null, {
    autoescape: false,
    trimBlocks, lstripBlocks,
    tags: compat ? { variableStart: '{{', variableEnd: '}}' }
      : { variableStart: '${{', variableEnd: '}}' },
  });
  if (compat) {
    env.addFilter('jsonify', env.getFilter('dump'));
  } else {
    for (const [name, fn] of Object.entries(FILTERS)) {
      // the isolate boundary: arguments and result are JSON-copied
      env.addFilter(name, (...args) => JSON.parse(
        JSON.stringify(fn(...JSON.parse(JSON.stringify(args))))));
    }
  }
  return env;
}

const envs = {};
let uninstallCompat;

function render(template, context, opts = {}) {
  const compat = !!opts.compat;
  const key = `${compat}|${!!opts.trimBlocks}|${!!opts.lstripBlocks}`;
  if (!envs[key]) envs[key] = makeEnv(compat, !!opts.trimBlocks, !!opts.lstripBlocks);
  if (compat && !uninstallCompat) uninstallCompat = nunjucks.installJinjaCompat();
  if (!compat && uninstallCompat) { uninstallCompat(); uninstallCompat = undefined; }
  try {
    return envs[key].renderString(String(template), JSON.parse(JSON.stringify(context)));
  } catch (error) {
    throw new Error(String(error.message));
  }
}

// --- NunjucksWorkflowRunner.render: template.yaml values ---------------------------------

function isSingleTemplateString(input) {
  const parsed = nunjucks.parser.parse(input, {}, {
    autoescape: false, tags: { variableStart: '${{', variableEnd: '}}' },
  });
  return parsed.children.length === 1 &&
    !(parsed.children[0] && parsed.children[0].children &&
      parsed.children[0].children[0] instanceof nunjucks.nodes.TemplateData);
}

function renderValue(input, context) {
  if (input === undefined) return undefined;
  return JSON.parse(JSON.stringify(input), (_key, value) => {
    try {
      if (typeof value === 'string') {
        try {
          if (isSingleTemplateString(value)) {
            const wrapped = value.replace(/\${{(.+)}}/g, '${{ ( $1 ) | dump }}');
            const templated = render(wrapped, context);
            if (templated === '') return undefined;
            return JSON.parse(templated);
          }
        } catch (ex) {
          // Backstage logs this and falls back to the plain render
        }
        const templated = render(value, context);
        if (templated === '') return undefined;
        return templated;
      }
    } catch {
      return value;
    }
    return value;
  });
}

function isTruthy(value) {
  return Array.isArray(value) ? value.length > 0 : !!value;
}

// --- fetch:template's file loop -------------------------------------------------------------

function renderTree(src, out, input) {
  const targetPath = input.targetPath === undefined ? './' : input.targetPath;
  const outputDir = path.resolve(out, targetPath);
  let copyOnly; let renderFilename;
  if (input.copyWithoutRender && input.copyWithoutTemplating) {
    throw new Error('Fetch action input copyWithoutRender and copyWithoutTemplating can not be used at the same time');
  }
  if (input.copyWithoutRender) { copyOnly = input.copyWithoutRender; renderFilename = false; }
  else { copyOnly = input.copyWithoutTemplating; renderFilename = true; }
  if (input.templateFileExtension && (copyOnly || input.cookiecutterCompat)) {
    throw new Error('Fetch action input extension incompatible with copyWithoutRender/copyWithoutTemplating and cookiecutterCompat');
  }
  let extension = false;
  if (input.templateFileExtension) {
    extension = input.templateFileExtension === true ? '.njk' : input.templateFileExtension;
    if (!extension.startsWith('.')) extension = `.${extension}`;
  }
  const globOpts = { cwd: src, dot: true, onlyFiles: false, markDirectories: true,
    followSymbolicLinks: false };
  const entries = globby.sync('**/*', globOpts);
  const nonTemplated = new Set(globby.sync(copyOnly || [], globOpts));
  const context = { [input.cookiecutterCompat ? 'cookiecutter' : 'values']: input.values };
  const opts = { compat: !!input.cookiecutterCompat, trimBlocks: input.trimBlocks,
    lstripBlocks: input.lstripBlocks };
  const written = [];
  for (const location of entries) {
    let renderContents;
    let local = location;
    if (extension) {
      renderContents = path.extname(local) === extension;
      if (renderContents) local = local.slice(0, -extension.length);
      local = render(local, context, opts);
    } else {
      renderContents = !nonTemplated.has(location);
      if (renderFilename || renderContents) local = render(local, context, opts);
    }
    if (local === '' || local.startsWith('/') || local.includes('//')) continue;
    const outputPath = path.resolve(outputDir, local);
    if (fs.existsSync(outputPath) && !input.replace) continue;
    if (location.endsWith('/')) {
      fs.mkdirSync(outputPath, { recursive: true });
      continue;
    }
    const inputPath = path.join(src, location);
    const stats = fs.lstatSync(inputPath);
    fs.mkdirSync(path.dirname(outputPath), { recursive: true });
    if (stats.isSymbolicLink() || isBinaryFileSync(inputPath)) {
      fs.copyFileSync(inputPath, outputPath);
    } else {
      const contents = fs.readFileSync(inputPath, 'utf-8');
      fs.writeFileSync(outputPath, renderContents ? render(contents, context, opts) : contents,
        { mode: fs.statSync(inputPath).mode });
    }
    written.push(path.relative(out, outputPath));
  }
  return written;
}

function copyDir(src, dest) {
  if (!fs.existsSync(src)) {
    throw new Error(`ENOENT: no such file or directory, lstat '${src}'`);
  }
  fs.cpSync(src, dest, { recursive: true });
}

// --- a template run: fetch:* for real, every other action's outputs given -------------------

function runTemplate(req) {
  const templateFile = req.template;
  const templateDir = path.dirname(templateFile);
  const doc = YAML.parse(fs.readFileSync(templateFile, 'utf-8'));
  const workspace = req.workspace;
  const context = {
    parameters: req.parameters || {}, steps: {}, secrets: req.secrets || {},
    user: req.user || {}, environment: { parameters: {}, secrets: {} },
    context: { task: { id: 'oracle' } },
  };
  const inputs = {};
  for (const step of (doc.spec && doc.spec.steps) || []) {
    if (step.if === false || (typeof step.if === 'string' && step.each === undefined &&
        !isTruthy(renderValue(step.if, context)))) {
      continue;
    }
    const resolvedEach = step.each && renderValue(step.each, context);
    if (step.each && !resolvedEach) {
      throw new Error(`Invalid value on action ${step.action}.each parameter, "${step.each}" cannot be resolved to a value`);
    }
    const iterations = (resolvedEach
      ? Object.entries(resolvedEach).map(([key, value]) => ({ each: { key, value } }))
      : [{}]).map(i => {
      const full = { ...context, ...i };
      const shouldRun = !('each' in i) || !step.if || isTruthy(renderValue(step.if, full));
      return { ...i, shouldRun, input: step.input ? renderValue(step.input, full) : {} };
    });
    inputs[step.id] = iterations.filter(i => i.shouldRun).map(i => i.input);
    for (const it of iterations) {
      if (!it.shouldRun) continue;
      const input = it.input || {};
      if (step.action === 'fetch:template' || step.action === 'fetch:plain') {
        const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'oracle-'));
        try {
          copyDir(path.resolve(templateDir, input.url), tmp);
          if (step.action === 'fetch:plain') {
            fs.cpSync(tmp, path.resolve(workspace, input.targetPath || './'), { recursive: true });
          } else {
            renderTree(tmp, workspace, input);
          }
        } finally {
          fs.rmSync(tmp, { recursive: true, force: true });
        }
      } else if (step.action === 'fetch:template:file' || step.action === 'fetch:plain:file') {
        const source = path.resolve(templateDir, input.url);
        const dest = path.resolve(workspace, input.targetPath);
        if (fs.existsSync(dest) && !input.replace) continue;
        fs.mkdirSync(path.dirname(dest), { recursive: true });
        if (step.action === 'fetch:plain:file' || isBinaryFileSync(source)) {
          fs.copyFileSync(source, dest);
        } else {
          const opts = { compat: !!input.cookiecutterCompat, trimBlocks: input.trimBlocks,
            lstripBlocks: input.lstripBlocks };
          const ctx = { [input.cookiecutterCompat ? 'cookiecutter' : 'values']: input.values };
          fs.writeFileSync(dest, render(fs.readFileSync(source, 'utf-8'), ctx, opts));
        }
      }
    }
    context.steps[step.id] = { output: (req.outputs || {})[step.id] || {} };
  }
  return { inputs };
}

// --- the line protocol ----------------------------------------------------------------------

function answer(req) {
  switch (req.op) {
    case 'render':
      return render(req.template, req.context || {}, req);
    case 'renderValue': {
      const result = renderValue(req.value, req.context || {});
      return result === undefined ? { $undefined: true } : result;
    }
    case 'renderTree':
      return renderTree(req.src, req.out, req.input || {});
    case 'runTemplate':
      return runTemplate(req);
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', line => {
  let reply;
  try {
    reply = { ok: true, result: answer(JSON.parse(line)) };
  } catch (error) {
    reply = { ok: false, error: String(error && error.message).split('\n')[0] };
  }
  process.stdout.write(`${JSON.stringify(reply)}\n`);
});

"""The figures' language: English, or the seed document's own Chinese, from one table.

Figures are built in English and then translated label by label: :data:`PHRASES` pairs each English label
template with the seed's words (``{name}`` keeps a name, key or number as it is), and :data:`TERMS` translates
the seed's terms inside any label no template covers. Translating the finished model rather than each builder
keeps every diagram kind (and any new one) in one language switch, and keeps names, keys and subjects exactly
as etcd and NATS spell them. The lifecycle's edge labels come from :data:`dynamo_nb.core.lifecycle.LABELS`,
which holds the seed's Chinese beside the English.

The language is ``lang=`` where a figure is asked for, else :func:`set_language`'s, else ``DYNAMO_NB_LANG``,
else English.
"""

from __future__ import annotations

import functools
import os
import re
from typing import Callable

from ..core.lifecycle import LABELS
from .model import Block, ClassModel, Flow, Message, Model, Note, Participant, SequenceModel, StateModel, Step

__all__ = ["LANGUAGES", "ENV", "set_language", "language", "translate", "say", "PHRASES", "TERMS", "KIND_NAMES",
           "EVENT_NAMES", "kind_name", "event_name", "UI", "ui"]

LANGUAGES = ("en", "zh")
ENV = "DYNAMO_NB_LANG"

_chosen: str | None = None


def _check(lang: str) -> str:
    norm = lang.strip().lower().replace("_", "-")
    norm = "zh" if norm.startswith("zh") else norm
    if norm not in LANGUAGES:
        raise ValueError(f"unknown language {lang!r}: use one of {', '.join(LANGUAGES)}")
    return norm


def set_language(lang: str | None = None) -> str:
    """Set the process-wide language of figures and widgets (``"zh"`` or ``"en"``); ``set_language()`` goes back
    to ``DYNAMO_NB_LANG`` (or English). Returns the language now in force."""
    global _chosen
    _chosen = None if lang is None else _check(lang)
    return language()


def language(lang: str | None = None) -> str:
    """The language to use: ``lang`` when given, else the process-wide one."""
    if lang is not None:
        return _check(lang)
    if _chosen is not None:
        return _chosen
    return _check(os.environ.get(ENV) or "en")


# ------------------------------------------------------------------------------------------------ the table
#: The seed's terms, translated wherever they appear as words (names stay: they are matched case-sensitively
#: as whole words only where the seed itself writes the Chinese).
TERMS: tuple[tuple[str, str], ...] = (
    ("DistributedRuntime", "分布式运行时"),  # short: a runtime's label sets its figure's width
    ("Namespace", "命名空间"),
    ("Component Registry", "Component 注册中心"),
    ("Component", "组件"),
    ("Endpoint", "端点"),
    ("Registry", "注册中心"),
    ("Services Map", "服务映射"),
    ("Stats Handlers Map", "统计处理器映射"),
    ("Shared Watcher", "共享 Watcher"),
    ("instances", "实例"),
    ("instance", "实例"),
    ("lease", "租约"),
    ("Lease", "租约"),
)

#: English label template → the seed's Chinese; ``{x}`` matches a name (kept as it is), ``{n}``, ``{m}`` and
#: ``{id}`` a count or a hex id.
PHRASES: tuple[tuple[str, str], ...] = (
    # hierarchy, reference, topology
    ("contains many components", "包含多个组件"),
    ("contains many endpoints", "包含多个端点"),
    ("Namespace: {name}", "命名空间: {name}"),
    ("Namespace {name}", "命名空间 {name}"),
    ("Component {name}", "组件 {name}"),
    ("Endpoint {name}", "端点 {name}"),
    ("endpoint reference {name}", "端点引用 {name}"),
    ("etcd_path {path}", "etcd 存储路径 {path}"),
    ("service_name {name}", "NATS 服务名 {name}"),
    ("etcd key {key}", "etcd 键 {key}"),
    ("NATS subject {subject}", "NATS 主题 {subject}"),
    ("instance {id} · {status}", "实例 {id} · {status}"),
    ("instance {id}", "实例 {id}"),
    ("no components known yet", "尚无已知组件"),
    ("no endpoint known yet", "尚无已知端点"),
    ("no live instance", "没有存活实例"),
    ("nothing to draw yet", "暂无可画内容"),
    ("nothing to draw", "暂无可画内容"),
    ("nothing known yet", "尚无已知内容"),
    ("nothing served, watched or called yet", "尚未提供、监视或调用任何端点"),
    ("Killed", "已被杀死 Killed"),
    ("key stays until its lease expires at {time}", "键保留到租约于 {time} 到期"),
    ("key stays until its lease expires", "键保留到租约到期"),
    ("live in etcd", "存在于 etcd"),
    ("seen by {who}", "被 {who} 看到"),
    ("{who} (application code)", "{who} (应用代码)"),
    ("calls ×{n}", "调用 ×{n}"),
    ("via {clients}", "经 {clients}"),  # short: edge labels side by side set a figure's width
    ("to {n} instance no longer live", "到 {n} 个已不存活的实例"),
    ("to {n} instances no longer live", "到 {n} 个已不存活的实例"),
    ("watches {n} instance · no call yet", "监视 {n} 个实例 · 尚未调用"),
    ("watches {n} instances · no call yet", "监视 {n} 个实例 · 尚未调用"),
    ("watches", "监视"),
    ("colour key", "颜色说明"),
    ("starting or not yet healthy", "启动中或尚未健康"),
    ("stopping or stopped", "停止中或已停止"),
    ("killed: key stays until its lease expires", "已被杀死: 键保留到租约到期"),
    ("seen in etcd (served elsewhere)", "在 etcd 中看到 (由别处提供)"),
    ("a fault caused on purpose, or etcd lists it and it does not answer", "人为造成的故障, 或 etcd 列出它却无应答"),
    ("+{n} more {what}", "另有 {n} 个{what}"),
    ("{n} instance", "{n} 个实例"),
    ("{n} instances", "{n} 个实例"),
    ("{n} endpoint", "{n} 个端点"),
    ("{n} endpoints", "{n} 个端点"),
    ("{n} component", "{n} 个组件"),
    ("{n} components", "{n} 个组件"),
    ("namespaces", "命名空间"),
    ("components", "组件"),
    ("endpoints", "端点"),
    ("instances", "实例"),
    ("clients", "客户端"),
    ("services", "服务"),
    ("watchers", "Watcher"),
    ("registries", "注册中心"),
    ("runtimes", "运行时"),
    ("no lease", "没有租约"),
    ("lease {id}", "租约 {id}"),
    ("running", "运行中"),
    ("shut down", "已关闭"),
    ("killed", "已被杀死"),
    ("LocalCluster · {state}", "LocalCluster · {state}"),
    ("embedded world (in this process)", "内嵌世界 (本进程内)"),
    ("requests · events", "请求 · 事件"),
    ("leases · keys · watches", "租约 · 键 · 监视"),
    ("not started", "未启动"),
    ("not running", "未运行"),
    # what a figure's title says it draws (describe_focus)
    ("runtime {name}", "运行时 {name}"),
    ("namespace {name}", "命名空间 {name}"),
    ("component {name}", "组件 {name}"),
    ("instance {id} of {ref}", "{ref} 的实例 {id}"),
    ("client#{n} of {ref}", "{ref} 的客户端 client#{n}"),
    ("registry of {runtime}", "{runtime} 的注册中心"),
    ("and {n} more", "另有 {n} 个"),
    # structure
    ("DistributedRuntime {name}", "DistributedRuntime 分布式运行时 {name}"),
    ("Instance {id} of {endpoint}", "{endpoint} 的实例 {id}"),
    ("+state: {state} on {runtime}", "+state: {state} 于 {runtime}"),
    # registry
    ("Component Registry of {runtime}", "{runtime} 的 Component 注册中心"),
    ("Registry", "Registry 注册中心"),
    ("{n} service", "{n} 个服务"),
    ("{n} services", "{n} 个服务"),
    ("{n} watcher", "{n} 个 Watcher"),
    ("{n} watchers", "{n} 个 Watcher"),
    ("Services Map", "服务映射 Services Map"),
    ("Stats Handlers Map", "统计处理器映射 Stats Handlers Map"),
    ("no service (serves nothing)", "没有服务 (未提供任何端点)"),
    ("no stats handler", "没有统计处理器"),
    ("{what}: no endpoint", "{what}: 没有端点"),
    ("{what}: none", "{what}: 无"),
    ("Shared Watcher {prefix}", "共享 Watcher {prefix}"),
    ("shared by {n} client", "{n} 个客户端共享"),
    ("shared by {n} clients", "{n} 个客户端共享"),
    ("shares", "共享"),
    ("no watcher (no client)", "没有 Watcher (没有客户端)"),
    ("no registry", "没有注册中心"),
    ("without vs with Registry: nothing shared yet", "没有 Registry vs 有 Registry: 尚无共享"),
    ("without vs with Registry (real counts)", "没有 Registry vs 有 Registry (真实计数)"),
    ("without Registry: {n} watcher, {m} service", "没有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("without Registry: {n} watchers, {m} service", "没有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("without Registry: {n} watcher, {m} services", "没有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("without Registry: {n} watchers, {m} services", "没有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("with Registry: {n} watcher, {m} service", "有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("with Registry: {n} watchers, {m} service", "有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("with Registry: {n} watcher, {m} services", "有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("with Registry: {n} watchers, {m} services", "有 Registry: {n} 个 Watcher, {m} 个服务"),
    ("one shared watcher for {comp}", "{comp} 的一个共享 Watcher"),
    ("own watcher of client#{n}", "client#{n} 自己的 Watcher"),
    ("client#{n} to {comp}", "client#{n} 连接 {comp}"),
    ("one service {name}", "一个服务 {name}"),
    ("own service for {name}", "{name} 自己的服务"),
    ("endpoint {name}", "端点 {name}"),
    # startup (seed §4.4)
    ("App", "应用"),
    ("start() {endpoint}", "start() {endpoint}"),
    ("get service group {name} (created)", "获取 Service Group {name} (新建)"),
    ("get service group {name} (shared, already there)", "获取 Service Group {name} (共享, 已存在)"),
    ("create service endpoint {name}", "创建 Service Endpoint {name}"),
    ("create PushEndpoint", "创建 PushEndpoint"),
    ("in parallel", "并行执行"),
    ("under lease {id}", "在租约 {id} 下"),
    ("→ key exists, start fails", "→ 键已存在, 启动失败"),
    ("listen on {subject}", "开始监听请求 {subject}"),
    ('in queue group "{q}": each request goes to one listener', '队列组 "{q}": 每个请求只交给一个监听者'),
    ("endpoint ready: instance {id} takes requests", "端点就绪, 开始处理请求: 实例 {id}"),
    ("no endpoint start recorded yet", "尚未记录端点启动"),
    ("the start of {ref} is no longer in the record buffer", "{ref} 的启动已不在记录缓冲区中"),
    # sequence (seed §6.2)
    ("{runtime} (watcher)", "{runtime} (Watcher)"),
    ("no served instance recorded yet", "尚未记录提供服务的实例"),
    ("create endpoint (Created)", "创建组件 (Created)"),
    ("grant lease (TTL {ttl} s)", "创建 Lease (TTL {ttl} s)"),
    ("lease id {id}", "Lease ID {id}"),
    ("start()", "start()"),
    ("create service {name}", "创建 Service {name}"),
    ("join service {name}", "加入 Service {name}"),
    ("register {key} (key exists)", "注册端点 {key} (键已存在)"),
    ("register {key}", "注册端点 {key}"),
    ("listen {subject}", "监听 {subject}"),
    ("running", "运行中"),
    ("Keep-Alive ×{n}", "Keep-Alive ×{n}"),
    ("requests ×{n}", "处理请求 ×{n}"),
    ("{n} item streamed back over TCP{extra}", "{n} 项经 TCP 流式返回{extra}"),
    ("{n} items streamed back over TCP{extra}", "{n} 项经 TCP 流式返回{extra}"),
    ("health Running ⇄ Healthy ×{n}", "健康 Running ⇄ Healthy ×{n}"),
    ("stop signal", "收到停止信号"),
    ("stop() → Stopping", "停止 → Stopping"),
    ("stop()", "停止"),
    ("stop receiving requests", "停止接收请求"),
    ("drained: {n} finished, {m} cancelled at the drain timeout", "排空: {n} 个完成, {m} 个在排空超时时取消"),
    ("finish {n} in-flight request ({m} item streamed)", "完成 {n} 个进行中的请求 (流式返回 {m} 项)"),
    ("finish {n} in-flight requests ({m} items streamed)", "完成 {n} 个进行中的请求 (流式返回 {m} 项)"),
    ("finish {n} in-flight request ({m} items streamed)", "完成 {n} 个进行中的请求 (流式返回 {m} 项)"),
    ("finish {n} in-flight requests ({m} item streamed)", "完成 {n} 个进行中的请求 (流式返回 {m} 项)"),
    ("revoke lease {id}", "Revoke Lease {id}"),
    ("deletes every key on the lease: {keys}", "自动删除注册信息: {keys}"),
    ("delete {key} (lease still held by other endpoints)", "删除 {key} (租约仍被其他端点持有)"),
    ("process killed (Killed): key stays until lease {id} expires{at}",
     "进程被杀 (Killed): 键保留到租约 {id} 到期{at}"),
    ("lease {id} expired: etcd deletes its keys", "租约 {id} 到期: etcd 删除其键"),
    ("lease {id} lost: re-grant and re-register", "租约 {id} 丢失: 重新申请并重新注册"),
    ("watch put {key}", "watch 写入 {key}"),
    ("watch delete {key}", "watch 删除 {key}"),
    ("earlier records were dropped from the ring buffer", "更早的记录已从环形缓冲区丢弃"),
    ("{n} earlier steps not shown", "{n} 个更早的步骤未显示"),
    # lifecycle (seed §6.1)
    ("now {state}", "当前 {state}"),
    ("killed: its key stays", "已被杀死: 它的键保留"),
    ("until the lease expires at {time}", "直到租约于 {time} 到期"),
    ("until the lease expires", "直到租约到期"),
    ("on {runtime}", "于 {runtime}"),
    # pubsub (seed §3.4)
    ("no events recorded yet", "尚未记录事件"),
    ("{n} earlier messages not shown", "{n} 条更早的消息未显示"),
    ('subscribe("{subject}")', 'subscribe("{subject}")'),
    ("deliver {event}", "消息推送 {event}"),
    ("on {subject}", "于 {subject}"),
    ("handle {event} event", "处理事件 {event}"),
    # a served @service graph (seed §7.2, §7.3)
    ("entry", "入口"),
    ("endpoints: {names}", "端点: {names}"),
    ("{n} worker", "{n} 个 worker"),
    ("{n} workers", "{n} 个 worker"),
    ("{n} of {m} workers", "{n}/{m} 个 worker"),
    ("+{n} more workers", "另有 {n} 个 worker"),
    ("endpoints: none", "端点: 无"),
    ("no service graph here: draw the handle serve() returned", "这里没有服务图: 请画 serve() 返回的句柄"),
    # a lease as etcd last read it (hierarchy, reference, registry), alone or after a watcher's instance
    ("lease: {n} s left at {time}", "租约: {time} 时剩余 {n} 秒"),
    ("lease {id}: {n} s left at {time}", "租约 {id}: {time} 时剩余 {n} 秒"),
    ("lease gone", "租约已不存在"),
    ("lease {id} gone", "租约 {id} 已不存在"),
    ("no lease: the key never expires", "没有租约: 键永不过期"),
    ("{ep}: lease: {n} s left at {time}", "{ep}: 租约: {time} 时剩余 {n} 秒"),
    ("{ep}: lease {id}: {n} s left at {time}", "{ep}: 租约 {id}: {time} 时剩余 {n} 秒"),
    ("{ep}: lease gone", "{ep}: 租约已不存在"),
    ("{ep}: lease {id} gone", "{ep}: 租约 {id} 已不存在"),
    ("{ep}: no lease: the key never expires", "{ep}: 没有租约: 键永不过期"),
    ("no answer at {time}: key outlived its process", "{time} 时无应答: 键比它的进程活得更久"),
    # faults caused on purpose (dynamo_nb.faults): on an instance, and as notes in a sequence
    ("⚠ keep-alive paused: lease ends {time}", "⚠ Keep-Alive 已暂停: 租约于 {time} 结束"),
    ("⚠ keep-alive paused", "⚠ Keep-Alive 已暂停"),
    ("⚠ cut off from NATS", "⚠ 与 NATS 断开"),
    ("⚠ slow: +{delay} s per item", "⚠ 变慢: 每项 +{delay} 秒"),
    ("⚠ in etcd, but did not answer a client", "⚠ 在 etcd 中, 却没有应答客户端"),
    ("in etcd", "在 etcd 中"),
    ("not in etcd", "不在 etcd 中"),
    ("⚠ fault: keep-alive paused, lease {id} runs out while serving",
     "⚠ 故障: Keep-Alive 已暂停, 租约 {id} 在服务期间耗尽"),
    ("fault ends: keep-alive resumed", "故障结束: Keep-Alive 恢复"),
    ("⚠ fault: cut off from NATS, its key stays in etcd", "⚠ 故障: 与 NATS 断开, 键仍在 etcd 中"),
    ("fault ends: reconnected to NATS", "故障结束: 已重连 NATS"),
    ("⚠ fault: handler slowed, +{delay} s per item", "⚠ 故障: 处理函数变慢, 每项 +{delay} 秒"),
    ("fault ends: handler at full speed", "故障结束: 处理函数恢复全速"),
    ("⚠ fault: {server} restarting", "⚠ 故障: {server} 重启中"),
    ("{server} restarted", "{server} 已重启"),
    # explain's checklist (dynamo_nb.diagnose): its frame; what each check saw stays as the check wrote it
    ("explain (no endpoint)", "explain (未指定端点)"),
    ("explain {ref}", "explain 端点 {ref}"),
    ("ok", "通过"),
    ("warning", "警告"),
    ("FAILED", "失败"),
    ("skipped", "跳过"),
    ("etcd reachable and authorised", "etcd 可达且已授权"),
    ("NATS reachable and authorised", "NATS 可达且已授权"),
    ("the endpoint's instance keys are in etcd", "端点的实例键在 etcd 中"),
    ("each instance key's lease is alive", "每个实例键的租约都存活"),
    ("each instance's request plane matches the caller's", "每个实例的请求平面与调用方一致"),
    ("each advertised TCP address accepts a connection", "每个公布的 TCP 地址都接受连接"),
    ("a NATS responder on each instance's subject", "每个实例的主题上都有 NATS 应答者"),
    ("the request fits the server's max_payload", "请求不超过服务器的 max_payload"),
    ("JetStream, where the profile needs it", "JetStream (profile 需要时)"),
    ("error:", "错误:"),
    ("cause:", "原因:"),
    ("fix:", "修复:"),
    ("→ step {step}:", "→ 步骤 {step}:"),
    ("error's step", "错误所在步骤"),
    ("+{n} more", "另有 {n} 行"),
    *((en, zh) for en, zh in LABELS.values() if en),
)

#: Diagram kinds by the seed's section titles (a figure's title line, a timeline's page).
KIND_NAMES: dict[str, str] = {
    "hierarchy": "Component 系统层级", "structure": "核心结构", "reference": "端点引用格式",
    "startup": "Endpoint 启动流程", "registry": "Registry 结构", "lifecycle": "状态转换",
    "sequence": "完整生命周期", "pubsub": "事件发布/订阅", "topology": "部署拓扑", "graph": "定义服务",
}

#: Record kinds (``Kind`` values) in the seed's words, for a timeline's event lines.
EVENT_NAMES: dict[str, str] = {
    "lease.grant": "创建 Lease", "lease.keepalive": "Keep-Alive", "lease.revoke": "Revoke Lease",
    "lease.lost": "租约丢失", "kv.create": "注册到 etcd", "kv.delete": "从 etcd 删除", "watch.put": "watch 写入",
    "watch.delete": "watch 删除", "start": "启动", "registry.service": "获取 Service Group",
    "service.endpoint": "创建 Service Endpoint", "push.endpoint": "创建 PushEndpoint", "listen": "开始监听请求",
    "ready": "端点就绪", "unlisten": "停止接收请求", "lifecycle": "生命周期", "call": "调用",
    "request": "处理请求", "response": "响应", "drain": "排空", "stop": "停止", "kill": "进程被杀",
    "event.subscribe": "订阅事件", "event.publish": "发布事件", "event.deliver": "消息推送",
    "event.handle": "处理事件", "fault": "故障",
}


#: The control panel's words (labels, buttons, tooltips, placeholders), English → the seed's Chinese.
UI: dict[str, str] = {
    "Serve an endpoint": "提供端点服务", "namespace": "命名空间", "component": "组件", "endpoint": "端点",
    "e.g. generate or chat/completions": "如 generate 或 chat/completions", "handler": "处理函数",
    "worker": "worker", "new worker": "新 worker", "lease TTL (s)": "租约 TTL (秒)",
    "lease TTL of a new worker (seconds)": "新 worker 的租约 TTL (秒)", "Serve": "提供服务",
    "start this endpoint in a worker runtime": "在一个 worker 运行时中启动这个端点", "Instances": "实例",
    "no instances yet — press Serve": "还没有实例——按「提供服务」", "Clear finished": "清除已结束",
    "remove stopped and expired instances from this list": "从列表中移除已停止和已过期的实例", "lease": "租约",
    "Stop": "停止", "graceful: stop intake, drain, revoke the lease": "优雅停止: 停止接收, 排空, 撤销租约",
    "Kill worker": "杀死 worker",
    "crash the worker runtime: its key stays until the lease expires": "让 worker 运行时崩溃: 键保留到租约到期",
    "Pause keep-alive": "暂停 Keep-Alive",
    "partition from etcd: the lease runs out while it serves": "与 etcd 分区: 服务期间租约耗尽",
    "Cut off NATS": "断开 NATS", "no requests reach it; its key stays in etcd": "请求到不了它; 键仍在 etcd 中",
    "the handler waits before each item it streams": "处理函数在流式返回每一项之前等待",
    "Call an endpoint": "调用端点", "request": "请求", 'JSON, e.g. {"prompt": "hello"}': 'JSON, 如 {"prompt": "hello"}',
    "routing": "路由", "round robin": "轮询", "random": "随机", "direct": "直接", "instance": "实例",
    "(no instances)": "(没有实例)", "Call": "调用", "Cancel": "取消",
    "close the stream: the handler sees the caller leave": "关闭流: 处理函数会看到调用方离开",
    "diagram": "图", "natural size": "自然尺寸", "larger": "放大", "larger still": "再放大", "full width": "全宽",
    "draw below the controls, across the whole panel": "画在控件下方, 横跨整个面板",
    "serve an endpoint to see it here": "提供一个端点服务, 它就会画在这里",
    "Dynamo control panel": "Dynamo 控制面板",
}


def ui(text: str, lang: str) -> str:
    """One of the control panel's words in ``lang`` (unchanged when the table lacks it)."""
    return text if lang == "en" else UI.get(text, text)


def kind_name(kind: str, lang: str) -> str:
    """A diagram kind as a title says it: the kind itself, and in Chinese the seed's section title beside it."""
    return kind if lang == "en" or kind not in KIND_NAMES else f"{KIND_NAMES[kind]} ({kind})"


def event_name(kind: str, lang: str) -> str:
    """A record kind as an event line says it (the record's own name stays, so it can be searched for)."""
    return kind if lang == "en" or kind not in EVENT_NAMES else f"{EVENT_NAMES[kind]} ({kind})"


_FIELD = re.compile(r"\{(\w+)\}")
_NUMBER = r"[0-9a-f]+"  # counts and hex ids: ``{n}``, ``{m}``, ``{id}``


def _compile(template: str) -> re.Pattern[str]:
    pieces, last = [], 0
    for m in _FIELD.finditer(template):
        pieces.append(re.escape(template[last:m.start()]))
        name = m.group(1)
        pieces.append(f"(?P<{name}>{_NUMBER if name in ('n', 'm', 'id') else '.*?'})")
        last = m.end()
    pieces.append(re.escape(template[last:]))
    return re.compile("".join(pieces), re.DOTALL)


def _literal(template: str) -> int:
    return len(_FIELD.sub("", template))


# the most specific template first ("Component Registry of {x}" before "Component {x}"), so order in the table
# does not matter
_TABLE: list[tuple[re.Pattern[str], str]] = [(_compile(en), zh) for en, zh in
                                             sorted(dict(PHRASES).items(), key=lambda p: -_literal(p[0]))]
_WORDS = [(re.compile(rf"(?<![\w.|/-]){re.escape(en)}(?![\w.|/-])"), zh) for en, zh in TERMS]


def _piece(text: str) -> str:
    for pattern, zh in _TABLE:
        m = pattern.fullmatch(text)
        if m is not None:
            return _FIELD.sub(functools.partial(_fill, m), zh)
    for word, zh in _WORDS:
        text = word.sub(zh, text)
    return text


def _fill(m: re.Match[str], field: re.Match[str]) -> str:
    """A template's field: a name as it is, but a phrase (``status``, ``what``) translated in turn."""
    name = field.group(1)
    value = m.group(name)
    return _piece(value) if name in ("status", "what") else value


def say(text: str, lang: str = "zh") -> str:
    """One label in ``lang``: each line, and each ``·``-separated part of a line, translated on its own."""
    if lang == "en" or not text:
        return text
    return "\n".join(" · ".join(_piece(part) for part in line.split(" · ")) for line in text.split("\n"))


def translate(model: Model, lang: str) -> Model:
    """``model`` with every label in ``lang`` (the model is changed in place and returned)."""
    if lang == "en":
        return model
    t: Callable[[str], str] = lambda text: say(text, lang)  # noqa: E731
    if isinstance(model, Flow):
        for _, data in model.nodes():
            data["lines"] = tuple(t(line) for line in data["lines"])
        for _, _, data in model.edges():
            data["label"] = t(data["label"])
        for cluster in model.clusters.values():
            cluster["label"] = t(cluster["label"])
    elif isinstance(model, SequenceModel):
        model.participants[:] = [Participant(p.key, t(p.label)) for p in model.participants]
        model.steps[:] = [_step(s, t) for s in model.steps]
    elif isinstance(model, ClassModel):
        for box in model.classes:
            box.title = t(box.title)
            box.attributes = [t(a) for a in box.attributes]
    elif isinstance(model, StateModel):
        model.transitions[:] = [type(tr)(tr.src, tr.dst, t(tr.label), tr.count) for tr in model.transitions]
        model.caption = t(model.caption)
    return model


def _step(step: Step, t: Callable[[str], str]) -> Step:
    if isinstance(step, Message):
        return Message(step.src, step.dst, t(step.text), step.reply)
    if isinstance(step, Note):
        return Note(step.over, t(step.text))
    assert isinstance(step, Block)
    return Block(step.kind, [(t(label), [_step(s, t) for s in arm]) for label, arm in step.branches])

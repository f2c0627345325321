# ruff: noqa: E501  (each English paragraph must be exactly as the notebook has it, long lines and all)
"""The Chinese of the walkthroughs' prose, paragraph by paragraph, in the seed document's own terms.

Each pair is (an English paragraph of a walkthrough's Markdown, exactly as it is there; its Chinese). Paragraphs
are split at blank lines, so one that several walkthroughs share (the first cell's note on backends) is written
once. Code is never translated: ``zh_notebooks.py`` copies code cells as they are. When an English paragraph
changes, the generator names it as missing here, so the Chinese cannot silently fall behind.
"""

PROSE: tuple[tuple[str, str], ...] = (
    # -- 00 ----------------------------------------------------------------------------------------------------
    ("""# Quick start: the component system in six cells""",
     """# 快速上手：六个单元格看懂 Component 系统"""),
    ("""This is the seed document's §7.1 example, running for real. `DistributedRuntime.create()` uses an embedded, in-process etcd and NATS unless `ETCD_ENDPOINTS` / `NATS_SERVER` point at real servers — the keys, values and subjects are the same either way.""",
     """这是种子文档 §7.1 的示例，真实运行。`DistributedRuntime.create()` 默认使用内嵌在本进程中的 etcd 和 NATS；若 `ETCD_ENDPOINTS` / `NATS_SERVER` 指向真实服务器，则连接它们——两种情况下的键、值和主题完全相同。"""),
    ("""A handler is an async generator: every `yield` is one streamed response. `start()` returns once the instance is registered in etcd (under the runtime's lease) and listening on NATS.""",
     """处理函数（handler）是一个异步生成器：每次 `yield` 就是一条流式响应。`start()` 在实例已注册到 etcd（挂在运行时的租约下）并开始在 NATS 上监听之后才返回。"""),
    ("""What did that write to etcd? The instance key and its JSON value, exactly as the seed's §4.3 shows:""",
     """它往 etcd 里写了什么？实例的键和它的 JSON 值，与种子文档 §4.3 所示完全一致："""),
    ("""Every object draws itself. The runtime shows its namespaces, components, endpoints and live instances:""",
     """每个对象都能画出自己。运行时画出它的命名空间、组件、端点和存活实例："""),
    ("""Stopping is graceful: stop intake, drain in-flight requests, revoke the lease — and etcd deletes the key.""",
     """停止是优雅的：停止接收请求，排空进行中的请求，撤销（revoke）租约——etcd 随即删除这个键。"""),
    ("""The served instance remembers its whole life: the lifecycle state machine of the seed's §6.1, with the states it went through and where it is now.""",
     """提供服务的实例记得自己的一生：种子文档 §6.1 的生命周期状态机，标出它经过的状态和当前所处的状态。"""),
    ("""## The whole story, one event at a time""",
     """## 完整的故事，一次一个事件"""),
    ("""Run top to bottom, a notebook shows each figure only as it was when its cell ran. The timeline below
redraws the figure as it was just after each recorded event: drag the slider, step with ◀ ▶, or press
play. `timeline.export_html(path)` writes the same story as one HTML file that opens in any browser,
offline.""",
     """笔记本从头运行到尾时，每张图只显示它所在单元格运行那一刻的样子。下面的时间线（Timeline）按记录下的每个事件重画这张图，显示事件刚发生后的系统：拖动滑块，用 ◀ ▶ 单步，或按播放。`timeline.export_html(path)` 把同一个故事写成一个 HTML 文件，离线也能在任何浏览器中打开。"""),
    # -- 01 ----------------------------------------------------------------------------------------------------
    ("""# 01 · Namespaces and isolation""",
     """# 01 · 命名空间与隔离"""),
    ("""*Seed §1 “Component 系统概览” and §2 “Namespace 命名空间”.*""",
     """*种子文档 §1「Component 系统概览」和 §2「Namespace 命名空间」。*"""),
    ("""Dynamo organises a distributed application in three levels: a **namespace** holds **components**, and a component
holds **endpoints**. This notebook builds the seed's first two figures from a running system and shows what the
isolation between namespaces means in etcd and on NATS.""",
     """Dynamo 用三个层级组织分布式应用：**命名空间**包含多个**组件**，组件包含多个**端点**。本笔记本从运行中的系统画出种子文档的前两张图，并展示命名空间之间的隔离在 etcd 和 NATS 上意味着什么。"""),
    ("""The first cell connects. It uses the embedded, in-process etcd and NATS unless `ETCD_ENDPOINTS` / `NATS_SERVER` name real servers or `DYNAMO_NB_USE_CLUSTER=1` asks for a local cluster; keys, values and subjects are the same either way. Every later `DistributedRuntime.create()` joins the same system, so each runtime below plays a separate process.""",
     """第一个单元格负责连接。默认使用内嵌在本进程中的 etcd 和 NATS；若 `ETCD_ENDPOINTS` / `NATS_SERVER` 指定了真实服务器，或 `DYNAMO_NB_USE_CLUSTER=1` 要求启动本地集群，则使用它们——两种情况下的键、值和主题完全相同。之后每次 `DistributedRuntime.create()` 都加入同一个系统，所以下面的每个运行时都扮演一个独立的进程。"""),
    ("""## 1 · The hierarchy (Component 系统层级)""",
     """## 1 · 层级结构（Component 系统层级）"""),
    ("""`DistributedRuntime → Namespace → Component → Endpoint`: each level is a cheap, validated handle. Nothing is
registered anywhere until an endpoint is *served*; the handles only know their names and the keys and subjects
derived from them.""",
     """`DistributedRuntime → Namespace → Component → Endpoint`：每一层都是一个廉价的、经过校验的句柄。在端点被*提供服务*（serve）之前，什么都不会注册；句柄只知道自己的名字，以及由名字推导出的键和主题。"""),
    ("""## 2.1 Design purpose (设计目的): logical isolation""",
     """## 2.1 设计目的：逻辑隔离"""),
    ("""The seed compares a namespace to a Kubernetes namespace and draws two of them: `production` with
Frontend → Router → Worker, and `development` with Frontend → Worker. Here both are deployed for real. Each
deployment is its own runtime (its own process, lease and connections); every component serves `generate`, and
the Frontend and Router forward each request to the next hop through a client — those clients are the arrows.""",
     """种子文档把命名空间比作 Kubernetes 的 Namespace，并画了两个：`production` 中是 Frontend → Router → Worker，`development` 中是 Frontend → Worker。这里两者都真实部署。每个部署是一个独立的运行时（独立的进程、租约和连接）；每个组件都提供 `generate` 端点，Frontend 和 Router 通过客户端把每个请求转发给下一跳——这些客户端就是图中的箭头。"""),
    ("""The notebook's own runtime plays a user: it calls each namespace's Frontend, and the request travels down that
namespace's chain.""",
     """笔记本自己的运行时扮演用户：它调用每个命名空间的 Frontend，请求沿着该命名空间的链路向下传递。"""),
    ("""The seed's figure, drawn from the three runtimes: each namespace is its own box, each component with its served
endpoint and live instance, and the calls that went between them.""",
     """种子文档的这张图，由三个运行时画出：每个命名空间是一个框，每个组件带着它提供的端点和存活实例，以及它们之间发生过的调用。"""),
    ("""### Isolation in etcd""",
     """### etcd 中的隔离"""),
    ("""Every key a namespace writes lives under its own prefix, `{namespace}/components/...`, so a watcher on
`production/` never hears about `development`, and two teams can use the same component names.""",
     """命名空间写入的每个键都位于它自己的前缀 `{namespace}/components/...` 之下，所以监视 `production/` 的 Watcher 永远不会收到 `development` 的消息，两个团队也可以使用相同的组件名。"""),
    ("""### Isolation on the event plane""",
     """### 事件平面上的隔离"""),
    ("""Events are published on subjects that start with `namespace.{name}.`, so a subscriber in `production` does not
receive what `development` publishes, even for an event of the same name (more in notebook 06).""",
     """事件发布在以 `namespace.{name}.` 开头的主题上，所以 `production` 中的订阅者收不到 `development` 发布的内容，即使事件同名也是如此（详见笔记本 06）。"""),
    ("""## 2.2 Usage (使用方式)""",
     """## 2.2 使用方式"""),
    ("""`runtime.namespace(name)` is all it takes; asking twice gives an equal handle, and a namespace lists the
components its runtime knows (served there, or seen live through a watcher).""",
     """只需 `runtime.namespace(name)`；调用两次得到相等的句柄。命名空间能列出其运行时所知道的组件（在本运行时提供服务的，或通过 Watcher 看到存活的）。"""),
    ("""## 2.3 Naming rules (命名规范)""",
     """## 2.3 命名规范"""),
    ("""| allowed | example |
| --- | --- |
| lower-case letters `a-z` | `production` |
| digits `0-9` | `team42` |
| hyphen `-` | `us-east` |
| underscore `_` | `dev_blue` |""",
     """| 允许的字符 | 示例 |
| --- | --- |
| 小写字母 `a-z` | `production` |
| 数字 `0-9` | `team42` |
| 连字符 `-` | `us-east` |
| 下划线 `_` | `dev_blue` |"""),
    ("""The real Dynamo declares these rules but does not enforce them; here a bad name fails at once, with an
`InvalidNameError` that names the value, the offending character and the allowed set.""",
     """真实的 Dynamo 声明了这些规则却不强制执行；这里一个不合法的名字会立即失败，抛出 `InvalidNameError`，指出这个值、出错的字符和允许的字符集。"""),
    ("""## Watching it change""",
     """## 看着它变化"""),
    ("""A live view redraws itself as the system changes. Shutting the `development` deployment down revokes its lease:
etcd deletes its keys, every watcher hears it, and its components and instances leave the picture. Only the
notebook's own client of `development.Frontend.generate` is left, pointing at an endpoint with no live instance.""",
     """实时视图（live view）会随系统变化而重画。关闭 `development` 部署会撤销它的租约：etcd 删除它的键，每个 Watcher 都会收到通知，它的组件和实例从图中消失。只剩下笔记本自己指向 `development.Frontend.generate` 的客户端，它指向一个没有存活实例的端点。"""),
    # -- 02 ----------------------------------------------------------------------------------------------------
    ("""# 02 · Components, endpoints and naming rules""",
     """# 02 · 组件、端点与命名规范"""),
    ("""*Seed §3 “Component 组件模型” and §4.1–4.2 “Endpoint 端点”.*""",
     """*种子文档 §3「Component 组件模型」和 §4.1–4.2「Endpoint 端点」。*"""),
    ("""A **component** is a deployable service unit: one etcd prefix, one NATS service, any number of endpoints. An
**endpoint** is a callable entry point on it. This notebook draws the seed's class structure from live objects,
prints the names every component derives, resolves the seed's endpoint reference format, and shows the error
each kind of bad name gets.""",
     """**组件**是可部署的服务单元：一个 etcd 前缀，一个 NATS 服务，任意数量的端点。**端点**是组件上的可调用入口点。本笔记本从实时对象画出种子文档的类结构，打印每个组件推导出的名字，解析种子文档的端点引用格式，并展示每种不合法名字得到的错误。"""),
    ("""## 3.1 Core structure (核心结构)""",
     """## 3.1 核心结构"""),
    ("""The seed's class diagram: a `Namespace` knows its runtime and makes components; a `Component` knows its runtime,
name and namespace, makes endpoints and derives `etcd_path()` and `service_name()`; an `Endpoint` makes clients
and endpoint builders. Serve two endpoints of one component in a worker runtime, then let the component draw
itself.""",
     """种子文档的类图：`Namespace` 知道它的运行时并创建组件；`Component` 知道它的运行时、名字和命名空间，创建端点并推导出 `etcd_path()` 和 `service_name()`；`Endpoint` 创建客户端和端点构建器（EndpointBuilder）。在一个 worker 运行时中为同一个组件提供两个端点，然后让组件画出自己。"""),
    ("""## 3.2 Defining a component in Python (Python 中定义组件)""",
     """## 3.2 Python 中定义组件"""),
    ("""The seed shows Dynamo's SDK decorators, `@service(dynamo={"namespace": ...})` on a class and `@dynamo_endpoint()`
on its async generator methods. Underneath, the SDK does what the next cell does by hand: it serves each
decorated method as an endpoint of a component named after the class. Bound methods are handlers like any other.""",
     """种子文档展示了 Dynamo SDK 的装饰器：类上的 `@service(dynamo={"namespace": ...})` 和异步生成器方法上的 `@dynamo_endpoint()`。在底层，SDK 做的就是下一个单元格手工做的事：把每个被装饰的方法作为一个以类名命名的组件的端点提供服务。绑定方法和其他处理函数一样可用。"""),
    ("""## 3.3 Paths and naming (路径与命名)""",
     """## 3.3 路径与命名"""),
    ("""Every name a component uses is derived from its namespace and its own name, by pure functions in
`dynamo_nb.names`. The seed's table, computed from the live component `dynamo.processor`, plus the two names one
*instance* gets from its lease (the key it registers under, and the NATS subject it listens on):""",
     """组件使用的每个名字都由它的命名空间和它自己的名字推导而来，由 `dynamo_nb.names` 中的纯函数计算。下面是种子文档的表格，由存活组件 `dynamo.processor` 算出，外加一个*实例*从它的租约得到的两个名字（它注册时使用的键，以及它监听的 NATS 主题）："""),
    ("""## 4.1 Endpoint definition (Endpoint 定义)""",
     """## 4.1 Endpoint 定义"""),
    ("""In the Rust runtime an endpoint is `struct Endpoint { component: Component, name: String }`. The Python handle
is the same pair, and equal handles compare equal:""",
     """在 Rust 运行时中，端点是 `struct Endpoint { component: Component, name: String }`。Python 句柄也是同样的一对，相等的句柄比较结果相等："""),
    ("""## 4.2 Endpoint reference format (端点引用格式)""",
     """## 4.2 端点引用格式"""),
    ("""```
endpoint: dynamo.Processor.chat/completions
#         ^namespace ^component ^endpoint name
```""",
     """```
endpoint: dynamo.Processor.chat/completions
#         ^命名空间 ^组件     ^端点名
```"""),
    ("""The first two dots separate the three parts; an endpoint name may itself contain `/`-separated segments.
`runtime.endpoint(reference)` parses it, each part checked by its own rule.""",
     """前两个点分隔出三个部分；端点名本身可以包含以 `/` 分隔的多段。`runtime.endpoint(reference)` 解析它，每个部分按各自的规则检查。"""),
    ("""## Naming rules and the errors a bad name gets""",
     """## 命名规范，以及不合法名字得到的错误"""),
    ("""| object | allowed | why |
| --- | --- | --- |
| namespace | `a-z 0-9 - _` | seed §2.3 |
| component | `A-Z a-z 0-9 - _` | the seed's own components are class names (`Processor`, `VllmWorker`) |
| endpoint | segments of `A-Z a-z 0-9 - _` joined by `/` | the seed's `chat/completions` |""",
     """| 对象 | 允许的字符 | 原因 |
| --- | --- | --- |
| 命名空间 | `a-z 0-9 - _` | 种子文档 §2.3 |
| 组件 | `A-Z a-z 0-9 - _` | 种子文档自己的组件名就是类名（`Processor`、`VllmWorker`） |
| 端点 | 由 `A-Z a-z 0-9 - _` 组成、以 `/` 连接的多段 | 种子文档的 `chat/completions` |"""),
    ("""A `.` would break the reference format and NATS subjects, a space or `*`/`>` is not a NATS subject token, and a
stray `/` in a namespace or component would create extra etcd levels that watchers never look at. So a bad name
is refused when the handle is made, before anything reaches etcd or NATS:""",
     """`.` 会破坏引用格式和 NATS 主题，空格或 `*`/`>` 不是合法的 NATS 主题记号，而命名空间或组件中多出的 `/` 会在 etcd 中造出 Watcher 永远不会去看的额外层级。所以不合法的名字在创建句柄时就被拒绝，任何东西都还没到达 etcd 或 NATS："""),
    ("""`InvalidNameError` is a `ValueError`, and it carries the details as attributes, so tools can point at the
offending character:""",
     """`InvalidNameError` 是一个 `ValueError`，并把细节作为属性携带，这样工具可以指出出错的字符："""),
    # -- 03 ----------------------------------------------------------------------------------------------------
    ("""# 03 · Registration and the startup sequence""",
     """# 03 · 注册与启动流程"""),
    ("""*Seed §4.3 “Endpoint 注册信息” and §4.4 “Endpoint 启动流程”.*""",
     """*种子文档 §4.3「Endpoint 注册信息」和 §4.4「Endpoint 启动流程」。*"""),
    ("""Serving an endpoint does two things at once: it writes the instance's registration into etcd, under the
runtime's lease, and it starts listening on NATS. This notebook starts one, draws the sequence it went through
from what the runtime recorded, and reads the real key and value back from etcd.""",
     """为端点提供服务同时做两件事：把实例的注册信息写入 etcd（挂在运行时的租约下），并开始在 NATS 上监听。本笔记本启动一个端点，根据运行时的记录画出它经历的时序，并从 etcd 读回真实的键和值。"""),
    ("""## 4.4 The startup sequence (Endpoint 启动流程)""",
     """## 4.4 Endpoint 启动流程"""),
    ("""`endpoint_builder().handler(h).start()`:""",
     """`endpoint_builder().handler(h).start()`："""),
    ("""1. gets the component's service group from the **Registry** (creating it the first time),
2. creates the NATS **service endpoint** for this endpoint,
3. creates the **push endpoint** that hands requests to the handler,
4. then, **in parallel**, `kv_create`s the registration in etcd (create-only) and starts listening on NATS.""",
     """1. 从 **注册中心（Registry）** 获取组件的 Service Group（第一次时创建），
2. 为这个端点创建 NATS **Service Endpoint**，
3. 创建把请求交给处理函数的 **PushEndpoint**，
4. 然后**并行执行**：在 etcd 中 `kv_create` 注册信息（只创建，不覆盖），并开始在 NATS 上监听。"""),
    ("""It returns only when both parallel steps are done: the endpoint is ready. A separate worker runtime does this,
as a separate process would.""",
     """只有两个并行步骤都完成后它才返回：端点就绪。这件事由一个单独的 worker 运行时来做，就像一个单独的进程那样。"""),
    ("""The figure is drawn from the worker's recorder, a ring buffer of what it did. The same records, as text:""",
     """这张图由 worker 的记录器（recorder）画出，记录器是一个记下它所做之事的环形缓冲区。同样的记录，以文本形式："""),
    ("""## 4.3 Registration info (Endpoint 注册信息)""",
     """## 4.3 Endpoint 注册信息"""),
    ("""What the `kv_create` wrote, read back from etcd through the notebook's own runtime. The key is
`{namespace}/components/{component}/{endpoint}:{lease_id:x}` and the value is the seed's JSON: component,
endpoint, namespace, the lease id, and the transport, whose `nats_tcp` entry is the subject the instance listens
on.""",
     """`kv_create` 写入的内容，通过笔记本自己的运行时从 etcd 读回。键是 `{namespace}/components/{component}/{endpoint}:{lease_id:x}`，值是种子文档中的 JSON：组件、端点、命名空间、租约 ID 和传输方式，其中 `nats_tcp` 一项就是实例监听的主题。"""),
    ("""### The lease""",
     """### 租约"""),
    ("""Each runtime holds one primary lease (Dynamo's default TTL is 10 s) and refreshes it about every TTL/3. Every key
the runtime registers is attached to it: if the runtime stops refreshing — it crashed, or lost its network — etcd
deletes the keys when the lease runs out (notebook 05 shows that happening).""",
     """每个运行时持有一个主租约（Dynamo 默认 TTL 为 10 秒），大约每 TTL/3 续约一次。运行时注册的每个键都挂在这个租约上：如果运行时停止续约——它崩溃了，或者断网了——租约到期时 etcd 会删除这些键（笔记本 05 展示了这一过程）。"""),
    ("""### One key per instance""",
     """### 每个实例一个键"""),
    ("""The registration is *create-only*: serving the same endpoint twice under one lease would overwrite a live
instance, so it is refused. A second worker has its own lease, hence its own key: that is how an endpoint gets
several instances, and how a client finds them all.""",
     """注册是*只创建*（create-only）的：在同一个租约下为同一个端点提供两次服务会覆盖一个存活的实例，所以会被拒绝。第二个 worker 有自己的租约，因此有自己的键：端点就是这样拥有多个实例的，客户端也是这样找到所有实例的。"""),
    ("""### States passed on the way""",
     """### 途经的状态"""),
    ("""While starting, the instance walked the first states of the lifecycle (notebook 05 draws the whole machine):
`Created` → `Registered` once the key is written → `Running` once it listens → `Healthy` once its service
answers a health check.""",
     """启动过程中，实例走过了生命周期的前几个状态（笔记本 05 画出完整的状态机）：`Created` → 键写入后 `Registered` → 开始监听后 `Running` → 服务通过健康检查后 `Healthy`。"""),
    # -- 04 ----------------------------------------------------------------------------------------------------
    ("""# 04 · The registry: shared services, shared watchers, stats""",
     """# 04 · 注册中心：共享的服务、共享的 Watcher、统计信息"""),
    ("""*Seed §5 “Registry 注册中心”.*""",
     """*种子文档 §5「Registry 注册中心」。*"""),
    ("""Each runtime has one **Registry**. It holds the NATS service of every component the runtime serves (one per
component, shared by all its endpoints), the etcd watchers its clients use (one per component, shared by all its
clients), and the stats handlers that fill each endpoint's `$SRV.STATS` entry. This notebook builds the seed's
registry figure from a live runtime and shows each kind of sharing.""",
     """每个运行时有一个**注册中心（Registry）**。它持有运行时所提供的每个组件的 NATS 服务（每个组件一个，由其所有端点共享）、客户端使用的 etcd Watcher（每个组件一个，由其所有客户端共享），以及填写每个端点 `$SRV.STATS` 条目的统计处理器。本笔记本从一个存活的运行时画出种子文档的注册中心图，并展示每一种共享。"""),
    ("""## 5.1 Registry structure (Registry 结构)""",
     """## 5.1 Registry 结构"""),
    ("""A worker runtime serving the seed's three components — `frontend`, `processor` and `worker` — each endpoint with a
stats handler (a function returning the `data` field of its `$SRV.STATS` entry).""",
     """一个 worker 运行时提供种子文档中的三个组件——`frontend`、`processor` 和 `worker`——每个端点都带一个统计处理器（一个返回其 `$SRV.STATS` 条目中 `data` 字段的函数）。"""),
    ("""## 5.2 What the registry solves (Registry 解决的问题)""",
     """## 5.2 Registry 解决的问题"""),
    ("""| problem | solution |
| --- | --- |
| services created twice | all endpoints of one component share one NATS service |
| watches opened twice | all clients of one component share one etcd watcher |
| stats scattered | one map of stats handlers per endpoint |""",
     """| 问题 | 解决方案 |
| --- | --- |
| Service 重复创建 | 同一个组件的多个端点共享一个 NATS Service |
| Watch 重复 | 同一个组件的多个客户端共享一个 etcd Watcher |
| Stats 分散 | 统一管理每个端点的统计处理器 |"""),
    ("""**Service sharing.** A second endpoint on `processor` joins the existing `dynamo|processor` service instead of
creating another one; the number of services stays at three.""",
     """**服务共享。** `processor` 上的第二个端点加入已有的 `dynamo|processor` 服务，而不是再创建一个；服务数量仍然是三个。"""),
    ("""## 5.3 Without a registry vs with one (没有 Registry vs 有 Registry)""",
     """## 5.3 没有 Registry vs 有 Registry"""),
    ("""Two clients, A and B, of component X. Without a registry each would open its own etcd watch on X's prefix; with
it they share one watcher, and it is released when the last of them closes. The notebook's own runtime plays the
caller here.""",
     """组件 X 的两个客户端 A 和 B。没有注册中心时，每个客户端都会在 X 的前缀上打开自己的 etcd watch；有了它，二者共享一个 Watcher，最后一个客户端关闭时它才被释放。这里由笔记本自己的运行时扮演调用方。"""),
    ("""The figure draws both registries, the worker's (the `processor` service now carries two endpoints) and the
notebook's (two clients on one watcher), and below them the same system without a registry: a watcher per client
and a service per endpoint. The counts are the real ones.""",
     """这张图画出两个注册中心：worker 的（`processor` 服务现在承载两个端点）和笔记本的（两个客户端共用一个 Watcher）；在它们下方是没有注册中心时的同一个系统：每个客户端一个 Watcher，每个端点一个服务。图中的计数都是真实的。"""),
    ("""The shared watcher keeps the live instance list that both clients route from. A third client of another
component gets a watcher of its own:""",
     """共享 Watcher 维护着两个客户端据以路由的存活实例列表。另一个组件的第三个客户端会得到它自己的 Watcher："""),
    ("""## Stats aggregation""",
     """## Stats 聚合"""),
    ("""`component.scrape_stats()` sends `$SRV.STATS` to the component's service over NATS and gathers the replies: per
endpoint, the request and error counters, and the `data` its stats handler returns.""",
     """`component.scrape_stats()` 通过 NATS 向组件的服务发送 `$SRV.STATS` 并收集回复：按端点给出请求数和错误数计数器，以及其统计处理器返回的 `data`。"""),
    # -- 05 ----------------------------------------------------------------------------------------------------
    ("""# 05 · Lifecycle: states, graceful stop, crash and lease expiry""",
     """# 05 · 生命周期：状态、优雅停止、崩溃与租约到期"""),
    ("""*Seed §6 “组件生命周期”.*""",
     """*种子文档 §6「组件生命周期」。*"""),
    ("""Every served instance runs an explicit state machine, and every transition is recorded with its time. This
notebook draws the machine with the current state marked, walks the seed's full lifecycle sequence (lease,
registration, keep-alives, requests, graceful stop), and then crashes a worker to show what the lease is for.""",
     """每个提供服务的实例都运行一个显式的状态机，每次状态转换都带着时间被记录下来。本笔记本画出标有当前状态的状态机，走一遍种子文档的完整生命周期时序（租约、注册、Keep-Alive、请求、优雅停止），然后让一个 worker 崩溃，展示租约的用途。"""),
    ("""## 6.1 State transitions (状态转换)""",
     """## 6.1 状态转换"""),
    ("""`Created` → `Registered` (key written under the lease) → `Running` (listening) → `Healthy` (health check
passed); `Healthy` → `Running` while a check is pending or failed; a stop signal moves `Running`/`Healthy` to
`Stopping`, and revoking the lease to `Deregistered`.""",
     """`Created` → `Registered`（键已写在租约下）→ `Running`（正在监听）→ `Healthy`（健康检查通过）；检查等待中或失败时 `Healthy` → `Running`；收到停止信号时 `Running`/`Healthy` 进入 `Stopping`，撤销租约后进入 `Deregistered`。"""),
    ("""## 6.2 The full lifecycle (完整生命周期)""",
     """## 6.2 完整生命周期"""),
    ("""The seed's sequence: the component takes a lease, registers its endpoint and creates its service; while running
it sends keep-alives and handles requests; on a stop signal it stops receiving and revokes its lease, and etcd
deletes the registration by itself. Run it for real — requests, a keep-alive, then a graceful stop — and draw
it from the worker's recorder.""",
     """种子文档的时序：组件获取租约、注册端点并创建服务；运行中发送 Keep-Alive 并处理请求；收到停止信号时停止接收请求并撤销租约，etcd 自动删除注册信息。真实运行一遍——请求、一次 Keep-Alive、然后优雅停止——再根据 worker 的记录器画出来。"""),
    ("""**Graceful stop.** `served.stop()` stops taking requests, lets the ones in flight finish (bounded by a drain
timeout), then revokes the lease. Start a slow stream first: it still completes, because draining waits for it.""",
     """**优雅停止。** `served.stop()` 停止接收请求，让进行中的请求完成（受排空超时限制），然后撤销租约。先发起一个慢速流：它仍然能完成，因为排空会等它。"""),
    ("""A new call now fails at once, with an error that names the endpoint:""",
     """现在发起新调用会立即失败，错误中指明端点："""),
    ("""## A crash, and what the lease is for""",
     """## 崩溃，以及租约的用途"""),
    ("""`runtime.kill()` simulates a process that dies: keep-alives stop and connections drop, but nothing is
deregistered. The instance's key stays in etcd — clients still list it — until the lease expires; then etcd
deletes it and every watcher drops the instance. The countdown below polls etcd every half second.""",
     """`runtime.kill()` 模拟一个进程死亡：Keep-Alive 停止，连接断开，但没有任何注销。实例的键留在 etcd 中——客户端仍然列出它——直到租约到期；然后 etcd 删除它，每个 Watcher 都丢弃这个实例。下面的倒计时每半秒查询一次 etcd。"""),
    ("""The crashed runtime's own record of it: granted a lease, registered, then killed — no stop, no revoke.""",
     """崩溃的运行时自己的记录：获取了租约，注册，然后被杀死——没有停止，没有撤销。"""),
    # -- 06 ----------------------------------------------------------------------------------------------------
    ("""# 06 · The event plane: publish and subscribe""",
     """# 06 · 事件平面：发布与订阅"""),
    ("""*Seed §3.4 “事件发布/订阅”.*""",
     """*种子文档 §3.4「事件发布/订阅」。*"""),
    ("""Besides request/response, components talk through **events**: fire-and-forget JSON messages on NATS subjects
scoped by namespace and component. Dynamo's KV-cache-aware router learns where cached blocks are this way
(`kv_events`). This notebook reproduces the seed's pub/sub figure with two components in separate runtimes.""",
     """除了请求/响应，组件之间还通过**事件**通信：在按命名空间和组件划分的 NATS 主题上发送、发出即不管（fire-and-forget）的 JSON 消息。Dynamo 的 KV 缓存感知路由器就是这样得知缓存块在哪里的（`kv_events`）。本笔记本用分处两个运行时的两个组件重现种子文档的发布/订阅图。"""),
    ("""## The seed's flow""",
     """## 种子文档中的流程"""),
    ("""Component B subscribes to `namespace.dynamo.component.a.kv_events`; component A publishes `kv_events`; NATS
pushes the message to B; B handles it. Each component runs in its own runtime, as in a deployment.""",
     """组件 B 订阅 `namespace.dynamo.component.a.kv_events`；组件 A 发布 `kv_events`；NATS 把消息推送给 B；B 处理事件。每个组件运行在自己的运行时中，如同在部署中一样。"""),
    ("""## Subjects""",
     """## 主题"""),
    ("""Event subjects come from the same pure functions as every key and subject (`dynamo_nb.names`): component events
are `namespace.{ns}.component.{component}.{event}`, namespace events `namespace.{ns}.{event}`.""",
     """事件主题与所有键和主题出自同一组纯函数（`dynamo_nb.names`）：组件事件是 `namespace.{ns}.component.{component}.{event}`，命名空间事件是 `namespace.{ns}.{event}`。"""),
    ("""## Namespace events and isolation""",
     """## 命名空间事件与隔离"""),
    ("""A namespace-scoped event reaches every subscriber of that event in the namespace, and none in another namespace
(seed §2.1): `staging` subscribes to the same event name and hears nothing.""",
     """命名空间级别的事件会到达该命名空间内这个事件的每个订阅者，而不会到达其他命名空间（种子文档 §2.1）：`staging` 订阅了同名事件，却什么也收不到。"""),
    ("""Events are fire-and-forget: a subscriber that is not listening yet misses what was published before. And an
event must be JSON:""",
     """事件是发出即不管的：还没开始监听的订阅者会错过之前发布的内容。而且事件必须是 JSON："""),
    # -- 07 ----------------------------------------------------------------------------------------------------
    ("""# 07 · Playground: the control panel""",
     """# 07 · 游乐场：控制面板"""),
    ("""Everything from notebooks 01–06, from widgets. The panel below starts each endpoint you **Serve** in a new
*worker* runtime (a separate process, as far as etcd and NATS can tell) with a short lease, so you can:""",
     """笔记本 01–06 中的一切，都可以用控件完成。下面的面板把你**Serve**的每个端点启动在一个新的 *worker* 运行时中（在 etcd 和 NATS 看来是一个独立的进程），租约很短，因此你可以："""),
    ("""* **Serve** a namespace/component/endpoint with a built-in handler (`tokens` streams words with a delay,
  `echo`, `counter`, `fails` raises after one item) or one defined in this notebook;
* **Call** it with a JSON request, round-robin, random, or direct to an instance chosen from a list the client's
  watcher keeps current, and watch the streamed items arrive;
* **Stop** an instance gracefully (drain, revoke the lease: its key goes at once), or **Kill worker** to crash it:
  the key stays until the lease expires, and the countdown shows when;
* watch the diagram on the right follow along (pick another kind: registry, lifecycle, sequence…). It is
  drawn at its natural size, never shrunk to fit: scroll it sideways, zoom it (1.5×, 2×), or press
  **full width** to draw it below the controls.""",
     """* **Serve**：用内置处理函数（`tokens` 带延迟地逐词流式返回，`echo`，`counter`，`fails` 在返回一项后抛出异常）或本笔记本中定义的处理函数，为一个命名空间/组件/端点提供服务；
* **Call**：用 JSON 请求调用它，可选轮询（round-robin）、随机，或直接发给某个实例（从客户端的 Watcher 实时维护的列表中选择），并看着流式返回的各项到达；
* **Stop**：优雅地停止一个实例（排空、撤销租约：它的键立即消失），或用 **Kill worker** 让它崩溃：键保留到租约到期，倒计时显示何时到期；
* 看右侧的图跟着变化（可以换一种图：registry、lifecycle、sequence……）。它按自然尺寸绘制，从不缩小以适应：可以横向滚动、放大（1.5×、2×），或按 **full width** 把它画在控件下方。"""),
    ("""Bad input — an illegal name, invalid JSON, calling with no instances — is reported next to the field, and
nothing is created.""",
     """不合法的输入——非法名字、无效 JSON、在没有实例时调用——会在对应字段旁报告，并且不会创建任何东西。"""),
    ("""Your own handlers join the built-in ones: any async generator (taking `request`, or `request, context`).""",
     """你自己的处理函数与内置的并列：任何异步生成器（接受 `request`，或 `request, context`）。"""),
    ("""The notebook's own runtime, drawn once: it knows only what its clients watch — so far the endpoint the panel's
call form points at. The panel's diagram is the live one; run this cell again after playing to see what the
notebook's runtime has learned since.""",
     """笔记本自己的运行时，画一次：它只知道它的客户端所监视的东西——目前是面板调用表单所指向的端点。面板中的图是实时的；玩过之后再运行这个单元格，看看笔记本的运行时又了解了什么。"""),
    ("""Where widgets cannot render, `print(panel.summary())` tells the same story in text. When you are done:""",
     """在无法显示控件的地方，`print(panel.summary())` 用文本讲述同样的故事。用完之后："""),
    # -- 10 ----------------------------------------------------------------------------------------------------
    ("""# 10 · The fault lab: partitions, outages and slow workers""",
     """# 10 · 故障实验室：网络分区、服务中断与慢 worker"""),
    ("""*What production does to the component system (seed §4.3 leases, §5 registry, §6 lifecycle), caused on purpose.*""",
     """*生产环境会对 Component 系统做的事（种子文档 §4.3 租约、§5 注册中心、§6 生命周期），这里有意制造出来。*"""),
    ("""Each fault below comes from `dynamo_nb.faults` (or the toggles on an instance row of the control panel), is
recorded as a `fault` record, and shows in the figures while it lasts. Beside each figure: **etcd's view** (the
instance keys), **the client's view** (`client.instance_ids()`, and the instances that did not answer it), and
**who answers** a few calls.""",
     """下面的每个故障都来自 `dynamo_nb.faults`（或控制面板中实例行上的开关），被记录为一条 `fault` 记录，并在持续期间显示在图中。每张图旁边有：**etcd 的视图**（实例键）、**客户端的视图**（`client.instance_ids()`，以及没有应答它的实例），以及几次调用中**由谁应答**。"""),
    ("""## 1 · A partition from etcd: the keep-alive stops, the worker keeps serving""",
     """## 1 · 与 etcd 的网络分区：Keep-Alive 停止，worker 继续服务"""),
    ("""`pause_keepalive` stops the worker's lease renewals but not the worker. After the TTL (2 s here) etcd deletes its
key, every watcher drops the instance, and calls go to the other worker, although the paused one would still
answer. Ending the partition, the next keep-alive finds the lease gone: the worker takes a new lease and registers
again (a new instance id).""",
     """`pause_keepalive` 停止 worker 的租约续约，但不停止 worker。TTL（这里是 2 秒）过后 etcd 删除它的键，每个 Watcher 都丢弃这个实例，调用转到另一个 worker，尽管暂停的那个仍然能够应答。分区结束时，下一次 Keep-Alive 发现租约已不存在：worker 申请新的租约并重新注册（新的实例 ID）。"""),
    ("""## 2 · Cut off from NATS: etcd says it is there, nothing answers""",
     """## 2 · 与 NATS 断开：etcd 说它在，却没人应答"""),
    ("""`cut_off` drops the worker's request subscription and keeps its key. etcd and the client both still list it; a
call routed to it gets *no responders* and fails over to the other instance; the client then skips it for a few
seconds. The figure shows the mismatch on the instance: in etcd, but it did not answer.""",
     """`cut_off` 丢掉 worker 的请求订阅，但保留它的键。etcd 和客户端仍然都列出它；路由到它的调用得到 *no responders*，并故障转移到另一个实例；随后客户端会在几秒内跳过它。图中在该实例上显示这种不一致：在 etcd 中，却没有应答。"""),
    ("""## 3 · A slow handler""",
     """## 3 · 慢处理函数"""),
    ("""`slow_down(served, 0.3)` makes the handler wait before each item: the stream still arrives whole, only later;
the other worker is not held up.""",
     """`slow_down(served, 0.3)` 让处理函数在每一项之前等待：流仍然完整到达，只是更晚；另一个 worker 不受影响。"""),
    ("""## 4 · Restarting etcd and nats-server""",
     """## 4 · 重启 etcd 和 nats-server"""),
    ("""A `LocalCluster` of its own (real `etcd` and `nats-server` on loopback ports) for this part, so restarting it
disturbs nothing else. Clients and workers reconnect by themselves; each restart is recorded in the runtimes
named, and shows in the worker's sequence.""",
     """这一部分使用一个独立的 `LocalCluster`（真实的 `etcd` 和 `nats-server`，监听回环端口），所以重启它不会干扰其他任何东西。客户端和 worker 会自行重连；每次重启都记录在指定的运行时中，并显示在 worker 的时序图里。"""),
    ("""## Every fault is a record""",
     """## 每个故障都是一条记录"""),
    ("""The faults are facts in the worker runtimes' recorders, like every other event, so any figure or recording of
the system carries them.""",
     """故障和其他事件一样，是 worker 运行时记录器中的事实，所以系统的任何图或录制都携带着它们。"""),
    # -- 08 ----------------------------------------------------------------------------------------------------
    ("""# Services and config: the seed's §7.2 class and §7.3 YAML, served""",
     """# 服务与配置：种子文档 §7.2 的类和 §7.3 的 YAML，真实运行"""),
    ("""Dynamo services are written as classes (seed §3.2, §7.2): `@service(dynamo={"namespace": ...})` on the class, `@dynamo_endpoint()` on async-generator methods, `depends(Other)` for the services it calls. A YAML file sizes them (§7.3): per-service settings, and `ServiceArgs` with `workers` and `resources`.""",
     """Dynamo 的服务写成类（种子文档 §3.2、§7.2）：类上加 `@service(dynamo={"namespace": ...})`，异步生成器方法上加 `@dynamo_endpoint()`，它所调用的服务用 `depends(Other)` 声明。一个 YAML 文件决定它们的规模（§7.3）：每个服务的设置，以及带 `workers` 和 `resources` 的 `ServiceArgs`。"""),
    ("""Here the §7.2 class runs as written, with a stand-in engine for the model, behind a `Processor` and a `Frontend` that reach it through `depends`. `serve()` runs the graph in this kernel, each worker its own `DistributedRuntime` (own lease, own instance id); then the same graph runs as processes with the `dynamo-nb` command line.""",
     """这里 §7.2 的类按原样运行，用一个替身引擎代替模型，前面是通过 `depends` 调用它的 `Processor` 和 `Frontend`。`serve()` 在本内核中运行这个服务图，每个 worker 是自己的 `DistributedRuntime`（自己的租约、自己的实例 ID）；然后同一个服务图用 `dynamo-nb` 命令行以进程方式运行。"""),
    ("""`serve(Frontend, config=...)` starts the graph from the entry along its `link`/`depends` edges, dependencies first, and returns once every worker is registered. The config asks 4 workers × 1 GPU; this machine has none that can be detected, so `gpus=4` says how many to hand out (each worker gets its own id, as `CUDA_VISIBLE_DEVICES` would). The handle draws itself as the `graph` diagram.""",
     """`serve(Frontend, config=...)` 从入口出发，沿着 `link`/`depends` 边启动服务图，先启动被依赖的服务，等每个 worker 都注册后才返回。配置要求 4 个 worker × 1 块 GPU；这台机器上检测不到 GPU，所以用 `gpus=4` 说明可以分配多少块（每个 worker 得到自己的编号，就像 `CUDA_VISIBLE_DEVICES` 那样）。返回的句柄把自己画成 `graph` 图。"""),
    ("""A client calls the entry like any endpoint. The request goes Frontend → Processor → one of the four VllmWorker instances, each hop a real call through the request plane.""",
     """客户端像调用任何端点一样调用入口。请求经过 Frontend → Processor → 四个 VllmWorker 实例之一，每一跳都是经由请求平面的真实调用。"""),
    ("""Scale the worker down to 2 and the graph and the live hierarchy follow: the stopped workers deregister at once (graceful stop, seed §6.2).""",
     """把 worker 缩减到 2 个，服务图和实时层级随之变化：被停止的 worker 立即注销（优雅停止，种子文档 §6.2）。"""),
    ("""## The same graph as processes""",
     """## 同一个服务图，以进程运行"""),
    ("""`dynamo-nb serve module:Entry -f config.yaml` starts every worker as its own OS process on the servers in `ETCD_ENDPOINTS` / `NATS_SERVER`, or on a `LocalCluster` it starts and prints. `--gpus 4` again says how many GPUs exist; `--VllmWorker.model=...` overrides one key. SIGINT/SIGTERM stop every worker gracefully; a crashed worker is restarted.""",
     """`dynamo-nb serve module:Entry -f config.yaml` 把每个 worker 作为独立的操作系统进程启动，连接 `ETCD_ENDPOINTS` / `NATS_SERVER` 中的服务器，或者连接它自己启动并打印出来的 `LocalCluster`。`--gpus 4` 同样说明有多少块 GPU；`--VllmWorker.model=...` 覆盖一个配置键。SIGINT/SIGTERM 让每个 worker 优雅停止；崩溃的 worker 会被重启。"""),
    # -- 09 ----------------------------------------------------------------------------------------------------
    ("""# 09 · A real Dynamo worker beside a dynamo_nb worker""",
     """# 09 · 真实的 Dynamo worker 与 dynamo_nb worker 并肩运行"""),
    ("""`profile="dynamo"` makes a runtime register, serve and call exactly as NVIDIA Dynamo 1.6.1 does (`v1/instances/...`
keys, the TCP request plane by default, JSON or msgpack bodies). Here a **real** `ai-dynamo-runtime` worker and a
dynamo_nb worker share one LocalCluster; `attach()` draws both, each side calls the other, then the real worker
is stopped and leaves the drawing.""",
     """`profile="dynamo"` 让运行时完全按照 NVIDIA Dynamo 1.6.1 的方式注册、提供服务和调用（`v1/instances/...` 形式的键，默认使用 TCP 请求平面，JSON 或 msgpack 消息体）。这里一个**真实的** `ai-dynamo-runtime` worker 和一个 dynamo_nb worker 共用一个 LocalCluster；`attach()` 把两者都画出来，双方互相调用，然后停止真实的 worker，它随即从图中消失。"""),
    ("""The real runtime lives in its own interpreter (it pins pydantic and brings a large native module). `scripts/setup`
builds it in `.venv-dynamo/`; or set `DYNAMO_NB_DYNAMO_PYTHON` to a Python that can `import dynamo.runtime`
(`pip install ai-dynamo-runtime==1.6.1`, CPython ≥ 3.10, Linux). Without it, this notebook shows the dynamo_nb half only.""",
     """真实的运行时在它自己的解释器中运行（它锁定了 pydantic 的版本，并带有一个很大的原生模块）。`scripts/setup` 把它安装在 `.venv-dynamo/` 中；也可以把 `DYNAMO_NB_DYNAMO_PYTHON` 设为一个能 `import dynamo.runtime` 的 Python（`pip install ai-dynamo-runtime==1.6.1`，CPython ≥ 3.10，Linux）。没有它时，本笔记本只展示 dynamo_nb 这一半。"""),
    ("""## Two workers: one real, one dynamo_nb""",
     """## 两个 worker：一个真实的，一个 dynamo_nb 的"""),
    ("""## Everything registered, drawn live (no names given in advance)""",
     """## 所有已注册的东西，实时画出（无需事先给出名字）"""),
    ("""## Each side calls the other""",
     """## 双方互相调用"""),
    ("""## Stop the real worker and watch it leave""",
     """## 停止真实的 worker，看着它离开"""),
    # -- 11 ----------------------------------------------------------------------------------------------------
    ("""# 11 · Why is my call failing? Debugging with `explain`""",
     """# 11 · 我的调用为什么失败？用 `explain` 调试"""),
    ("""A call that fails says little: *no instances found*, *no responders*, *Invalid TCP address*, *deadline has
elapsed*. `await dynamo_nb.explain("ns.Comp.ep")` runs a checklist against the servers a runtime would use —
etcd and NATS reachable, the endpoint's keys (and the nearest names when they are missing), each key's lease and
its time left, each instance's request plane against the caller's, a TCP connect to each advertised address, a
NATS responder on each subject, the request's size against `max_payload`, JetStream — and names the failing step,
its likely cause and the fix. It never hangs: it returns within its `timeout` (4 s) even when a server is frozen.""",
     """失败的调用透露的信息很少：*no instances found*、*no responders*、*Invalid TCP address*、*deadline has elapsed*。`await dynamo_nb.explain("ns.Comp.ep")` 针对运行时会使用的服务器逐项检查——etcd 和 NATS 是否可达，端点的键（缺失时给出最接近的名字），每个键的租约及其剩余时间，每个实例的请求平面与调用方的是否一致，能否 TCP 连接到每个公布的地址，每个主题上是否有 NATS 应答者，请求大小是否超过 `max_payload`，JetStream——并指出失败的步骤、可能的原因和修复方法。它从不挂起：即使某个服务器卡死，它也会在 `timeout`（4 秒）之内返回。"""),
    ("""Here a small system is broken on purpose, one fault at a time: the failing call, then `explain`, then the fix.
A real Dynamo 1.6.1 worker and client join in where one is installed (`.venv-dynamo`, or `DYNAMO_NB_DYNAMO_PYTHON`).""",
     """这里有意把一个小系统弄坏，一次一个故障：先是失败的调用，然后是 `explain`，最后是修复。装有真实的 Dynamo 1.6.1 时（`.venv-dynamo`，或 `DYNAMO_NB_DYNAMO_PYTHON`），真实的 worker 和客户端也会加入。"""),
    ("""## A healthy system explains as all green""",
     """## 健康的系统：检查全部通过"""),
    ("""## Fault 1 · a wrong namespace""",
     """## 故障 1 · 命名空间写错了"""),
    ("""The worker was deployed into a namespace with a hash suffix (`shop-7c1e9a`, as some deployments name them); the
caller asks for `shop.payments.charge`. The call only says nothing is registered; `explain` finds the nearest
registered name and says why it differs.""",
     """worker 被部署到一个带哈希后缀的命名空间中（`shop-7c1e9a`，有些部署就是这样命名的）；调用方请求的却是 `shop.payments.charge`。调用只会说什么都没注册；`explain` 则找出最接近的已注册名字，并说明二者的差别在哪里。"""),
    ("""The fix: call the name the worker registered (or set `DYN_NAMESPACE` to it on the caller).""",
     """修复：调用 worker 注册的那个名字（或在调用方把 `DYN_NAMESPACE` 设为它）。"""),
    ("""## Fault 2 · a request-plane mismatch""",
     """## 故障 2 · 请求平面不一致"""),
    ("""Dynamo 1.6 has two request planes: TCP (the default) and NATS (`DYN_REQUEST_PLANE=nats`). A worker on one and a
client on the other do not meet: a real TCP-plane client fails with *Invalid TCP address*, a NATS-plane one hangs.
(dynamo_nb's own clients call either, so the failing call here is a real Dynamo client's when one is installed.)""",
     """Dynamo 1.6 有两种请求平面：TCP（默认）和 NATS（`DYN_REQUEST_PLANE=nats`）。worker 在一种平面上、客户端在另一种平面上，二者就无法相遇：真实的 TCP 平面客户端会以 *Invalid TCP address* 失败，NATS 平面的客户端则会挂起。（dynamo_nb 自己的客户端两种都能调用，所以这里失败的调用来自真实的 Dynamo 客户端——如果装有的话。）"""),
    ("""The fix: the same `DYN_REQUEST_PLANE` on both sides. The same client on the NATS plane:""",
     """修复：两边使用相同的 `DYN_REQUEST_PLANE`。同一个客户端，换到 NATS 平面上："""),
    ("""## Fault 3 · a request over NATS's `max_payload`""",
     """## 故障 3 · 请求超过 NATS 的 `max_payload`"""),
    ("""NATS refuses a message over the server's `max_payload` (1 MB by default); a real Dynamo client just times out.""",
     """NATS 拒绝超过服务器 `max_payload`（默认 1 MB）的消息；真实的 Dynamo 客户端只会超时。"""),
    ("""The fix: send less (a reference to the data), or raise `max_payload` in the server's configuration.""",
     """修复：少发一些（发送数据的引用），或在服务器配置中调高 `max_payload`。"""),
    ("""## Fault 4 · a worker killed inside its lease""",
     """## 故障 4 · worker 在租约有效期内被杀死"""),
    ("""A process that dies without stopping leaves its key in etcd until its lease expires: callers are sent to it and
nobody answers. The figures show each instance's lease, its time left as read from etcd, and the key that
outlived its process.""",
     """未经停止就死掉的进程会把它的键留在 etcd 中，直到租约到期：调用被发给它，却没人应答。图中显示每个实例的租约、从 etcd 读到的剩余时间，以及比它的进程活得更久的那个键。"""),
    ("""The fix: start the worker again (dynamo_nb clients fail over to it at once; the dead key goes when its lease does).""",
     """修复：重新启动 worker（dynamo_nb 客户端会立即故障转移到它；死掉的键随它的租约一起消失）。"""),
    ("""## Fault 5 · an advertised address nobody can reach""",
     """## 故障 5 · 公布的地址无人可达"""),
    ("""On Dynamo's TCP plane a worker advertises `host:port` in etcd; if callers cannot reach it (a wrong
`DYN_TCP_RPC_HOST`, a container address), requests fail or hang. Here the worker's key advertises a loopback port
nobody listens on.""",
     """在 Dynamo 的 TCP 平面上，worker 在 etcd 中公布 `host:port`；如果调用方连不上它（`DYN_TCP_RPC_HOST` 设错了，或是一个容器内部地址），请求就会失败或挂起。这里 worker 的键公布的是一个没人监听的回环端口。"""),
    ("""The fix: advertise an address callers can reach (here: the one the worker listens on).""",
     """修复：公布一个调用方能连上的地址（这里就是 worker 实际监听的那个）。"""),
    ("""## Raw errors, explained""",
     """## 解读原始错误"""),
    ("""`explain(error=text)` places the text of an error — ours or a real Dynamo client's — on the step that finds its
cause, and runs the checklist on the endpoint it names, if it names one.""",
     """`explain(error=text)` 把一条错误的文本——无论来自我们还是真实的 Dynamo 客户端——对应到能找出其原因的那一步，如果错误中提到了某个端点，还会对该端点运行检查清单。"""),
)

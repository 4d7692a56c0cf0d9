"""A CRI client for the tests: kubelet's side of the Kubernetes Container Runtime
Interface (k8s.io/cri-api, runtime/v1) over gRPC on a unix socket, with grpcio and
protobuf.

The messages and services are declared in proto/cri_runtime_v1.proto (the subset of
cri-api's api.proto the tests use, with its package, names and field numbers) and
compiled when this module is first imported (grpcio-tools). `api` is the messages
module, for requests the helpers below do not build. Also compiled: the runc v2 shim's
options (proto/runc_options.proto, `runc_options.Options`), which containerd stores
in a container record.

    with CRI(containerd.sock) as cri:
        cri.version().runtime_name                            # "containerd"
        with cri.pod("web", handler="pyrunc") as pod:         # RunPodSandbox; at the end
            cid = cri.create_container(pod, "box", IMAGE, ["sleep", "1000"])  # Stop- and
            cri.start(cid)                                     # RemovePodSandbox
            cri.exec_sync(cid, ["true"]).exit_code
            cri.status(cid, verbose=True).info["info"]         # the runtime's JSON

A failed call raises CRIError with the gRPC status and the runtime's message.
"""
import contextlib
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc

PROTO_DIR = Path(__file__).with_name("proto")


sys.path.insert(0, str(PROTO_DIR))  # where protoc looks for the files
try:
    api, _services = grpc.protos_and_services("cri_runtime_v1.proto")
    runc_options = grpc.protos("runc_options.proto")
finally:
    sys.path.remove(str(PROTO_DIR))


class CRIError(Exception):
    """A CRI call failed: `code` is the grpc.StatusCode, the message the runtime's."""

    def __init__(self, method: str, code, details: str):
        super().__init__(f"{method}: {code.name}: {details}")
        self.code = code


@dataclass
class Pod:
    id: str
    config: object  # api.PodSandboxConfig, sent again with each CreateContainer


class CRI:
    """A connection to a CRI runtime's socket (containerd: its main socket)."""
    api = api

    def __init__(self, socket, timeout: float = 60):
        self.timeout = timeout
        self.channel = grpc.insecure_channel(f"unix://{Path(socket).absolute()}")
        self.runtime = _services.RuntimeServiceStub(self.channel)
        self.images = _services.ImageServiceStub(self.channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def call(self, method: str, request, service=None):
        """One unary call, e.g. call("StartContainer", api.StartContainerRequest(...))."""
        stub = service or self.runtime
        try:
            return getattr(stub, method)(request, timeout=self.timeout)
        except grpc.RpcError as e:
            raise CRIError(method, e.code(), e.details()) from None

    # --- the calls kubelet makes -----------------------------------------------------

    def version(self):
        return self.call("Version", api.VersionRequest(version="v1"))

    def image_status(self, image: str):
        return self.call("ImageStatus", api.ImageStatusRequest(image=api.ImageSpec(image=image)),
                         self.images)

    def pod_config(self, name: str, *, namespace: str = "default", host_network: bool = True,
                   cgroup_parent: str = "", **fields):
        """A PodSandboxConfig. Host network by default (no CNI in the tests): kubelet
        then sends no hostname and the pod gets no network or UTS namespace."""
        ns = api.NamespaceOption(network=api.NODE if host_network else api.POD,
                                 pid=api.CONTAINER, ipc=api.POD)
        linux = api.LinuxPodSandboxConfig(
            cgroup_parent=cgroup_parent,
            security_context=api.LinuxSandboxSecurityContext(namespace_options=ns))
        meta = api.PodSandboxMetadata(name=name, uid=f"uid-{name}-{uuid.uuid4().hex[:8]}",
                                      namespace=namespace, attempt=0)
        return api.PodSandboxConfig(metadata=meta, linux=linux, **fields)

    def run_pod(self, name: str, handler: str = "", **config) -> Pod:
        """RunPodSandbox with pod_config(name, **config) on the runtime `handler`
        (a RuntimeClass's handler: the runtime's name in containerd's config)."""
        cfg = self.pod_config(name, **config)
        res = self.call("RunPodSandbox", api.RunPodSandboxRequest(config=cfg,
                                                                  runtime_handler=handler))
        return Pod(res.pod_sandbox_id, cfg)

    def remove_pod(self, pod: Pod) -> None:
        self.call("StopPodSandbox", api.StopPodSandboxRequest(pod_sandbox_id=pod.id))
        self.call("RemovePodSandbox", api.RemovePodSandboxRequest(pod_sandbox_id=pod.id))

    @contextlib.contextmanager
    def pod(self, name: str, handler: str = "", **config):
        """run_pod, then remove_pod (its containers too) however the block ends."""
        pod = self.run_pod(name, handler, **config)
        try:
            yield pod
        finally:
            self.remove_pod(pod)

    def create_container(self, pod: Pod, name: str, image: str, command=(), args=(),
                         **fields) -> str:
        """CreateContainer in `pod`; fields: more ContainerConfig fields (linux=…, envs=…)."""
        cfg = api.ContainerConfig(metadata=api.ContainerMetadata(name=name, attempt=0),
                                  image=api.ImageSpec(image=image), command=list(command),
                                  args=list(args), **fields)
        req = api.CreateContainerRequest(pod_sandbox_id=pod.id, config=cfg,
                                         sandbox_config=pod.config)
        return self.call("CreateContainer", req).container_id

    def start(self, cid: str) -> None:
        self.call("StartContainer", api.StartContainerRequest(container_id=cid))

    def stop(self, cid: str, timeout: int = 2) -> None:
        """StopContainer: the stop signal, then SIGKILL after `timeout` seconds."""
        self.call("StopContainer", api.StopContainerRequest(container_id=cid, timeout=timeout))

    def remove(self, cid: str) -> None:
        self.call("RemoveContainer", api.RemoveContainerRequest(container_id=cid))

    def exec_sync(self, cid: str, cmd: list[str], timeout: int = 20):
        """ExecSync: .stdout, .stderr (bytes), .exit_code."""
        return self.call("ExecSync", api.ExecSyncRequest(container_id=cid, cmd=cmd,
                                                         timeout=timeout))

    def status(self, cid: str, verbose: bool = False):
        """ContainerStatus: .status (state, exit_code…); verbose adds .info["info"],
        the runtime's JSON (containerd: pid, runtimeSpec with its cgroupsPath)."""
        return self.call("ContainerStatus", api.ContainerStatusRequest(container_id=cid,
                                                                       verbose=verbose))

    def pod_status(self, pod: Pod, verbose: bool = False):
        return self.call("PodSandboxStatus",
                         api.PodSandboxStatusRequest(pod_sandbox_id=pod.id, verbose=verbose))

    def containers(self, pod: Pod | None = None) -> list:
        """ListContainers, of one pod or all."""
        flt = api.ContainerFilter(pod_sandbox_id=pod.id if pod else "")
        return list(self.call("ListContainers", api.ListContainersRequest(filter=flt)).containers)

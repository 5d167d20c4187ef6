"""Fake CUDA driver for `edgedit.runtime.cuda_graph`: the five graph calls, on the fake pycuda streams.

Every function name is a symbol CUDA 12.6's libcuda exports (checked against
tests/fakes/released/cuda-12.6.77.driver-api.txt). CUresult 0 is success.
"""

import itertools

from pycuda import driver

CALLS = []
_graphs, _execs = {}, {}
_ids = itertools.count(0x100)


def cuStreamBeginCapture_v2(stream, mode):
    CALLS.append(("cuStreamBeginCapture_v2", mode))
    s = driver._STREAMS[stream.value]
    if s._capture is not None:
        return 900  # CUDA_ERROR_STREAM_CAPTURE_UNSUPPORTED: already capturing
    s._capture = []
    return 0


def cuStreamEndCapture(stream, graph):
    s = driver._STREAMS[stream.value]
    work, s._capture = s._capture, None
    handle = next(_ids)
    _graphs[handle] = work
    graph._obj.value = handle  # a ctypes.byref(c_void_p)
    CALLS.append(("cuStreamEndCapture", len(work)))
    return 0


def cuGraphInstantiateWithFlags(graph_exec, graph, flags):
    handle = next(_ids)
    _execs[handle] = _graphs[graph.value]
    graph_exec._obj.value = handle
    CALLS.append(("cuGraphInstantiateWithFlags", flags))
    return 0


def cuGraphLaunch(graph_exec, stream):
    s = driver._STREAMS[stream.value]
    for work in _execs[graph_exec.value]:
        s._enqueue(work)
    CALLS.append(("cuGraphLaunch", stream.value))
    return 0


def cuGraphExecDestroy(graph_exec):
    _execs.pop(graph_exec.value, None)
    return 0


def cuGraphDestroy(graph):
    _graphs.pop(graph.value, None)
    return 0

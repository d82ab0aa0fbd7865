"""Submit a request, grab it as an agent, complete and rate it, with grpcio.

Run from the repository root against a `daiban serve` in development mode:

    python3 -m pip install grpcio grpcio-tools
    python3 examples/python/client.py

The script compiles proto/daiban/v1 into a temporary folder, so nothing
generated is kept in the repository.
"""

import os
import subprocess
import sys
import tempfile

import grpc
from grpc_tools import protoc

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVER = os.environ.get("DAIBAN_SERVER", "127.0.0.1:50051").removeprefix("http://")
DAIBAN = os.environ.get("DAIBAN_BIN", os.path.join(ROOT, "target", "release", "daiban"))


def compile_protos(out_dir):
    proto_dir = os.path.join(ROOT, "proto")
    files = [os.path.join("daiban", "v1", name) for name in
             ("work_order.proto", "agent.proto", "points.proto", "directory.proto", "sms.proto")]
    include = os.path.join(os.path.dirname(protoc.__file__), "_proto")
    status = protoc.main(["grpc_tools.protoc", f"-I{proto_dir}", f"-I{include}",
                          f"--python_out={out_dir}", f"--grpc_python_out={out_dir}", *files])
    if status != 0:
        sys.exit(f"protoc failed with status {status}")
    sys.path.insert(0, out_dir)


def agent_token(agent_id):
    binary = DAIBAN if os.path.exists(DAIBAN) else "daiban"
    result = subprocess.run([binary, "token", "agent", agent_id], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def main():
    with tempfile.TemporaryDirectory() as out_dir:
        compile_protos(out_dir)
        from daiban.v1 import agent_pb2, agent_pb2_grpc, work_order_pb2, work_order_pb2_grpc

        channel = grpc.insecure_channel(SERVER)
        orders = work_order_pb2_grpc.WorkOrderServiceStub(channel)
        agents = agent_pb2_grpc.AgentServiceStub(channel)
        key = os.environ.get("DAIBAN_API_KEY", "")
        app_auth = [("authorization", f"Bearer {key}")] if key else []

        order = orders.SubmitRequest(work_order_pb2.SubmitRequestRequest(
            request_text="我要开便利店",
            matter_code="M004",
            applicant=work_order_pb2.Applicant(name="王五", phone="13700001111"),
            grid_code="431127100008",
            channel=work_order_pb2.WECHAT,
            request_id="python-example-1",
        ), metadata=app_auth)
        print(f"submitted {order.order_id} ({order.number}), claim code {order.claim_code}")

        agent_auth = [("authorization", f"Bearer {agent_token('A0001')}")]
        try:
            claimed = agents.ClaimWorkOrder(agent_pb2.ClaimWorkOrderRequest(order_id=order.order_id),
                                            metadata=agent_auth)
            print(f"claimed by {claimed.agent_id}")
        except grpc.RpcError as err:
            # A second run finds the order of the same request_id already
            # claimed or settled.
            print(f"claim failed: {err.code().name}: {err.details()}")
            return

        agents.CompleteWorkOrder(agent_pb2.CompleteWorkOrderRequest(
            order_id=order.order_id, result_text="营业执照已办好"), metadata=agent_auth)
        rated = orders.RateWorkOrder(work_order_pb2.RateWorkOrderRequest(
            order_id=order.order_id, rating=work_order_pb2.SATISFIED), metadata=app_auth)
        print(f"rated {work_order_pb2.Rating.Name(rated.rating)}: "
              f"{rated.points_tenths / 10} points for {rated.agent_id}")


if __name__ == "__main__":
    main()

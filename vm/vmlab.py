#!/usr/bin/env python3
"""The Drawbridge VM lab: three qemu machines booted from the image vm/build-image.sh makes.

    msp  ──(wan wire)──  gw  ──(lan wire)──  lan

Each wire is a pair of qemu UDP sockets on 127.0.0.1 (`-netdev socket,udp=…,localaddr=…`): no
host bridge, no tap device, nothing outside loopback. Every machine boots the same image
read-only (`snapshot=on`: what a run writes is thrown away) and takes its role from the kernel
command line. The driver talks to each machine through two virtio/serial ports on Unix sockets
in the state directory: `<vm>.agent` (the lab agent: one JSON command per line, see
vm/guest/usr/lib/drawbridge-lab/agent) and `<vm>.console` (the serial console, root logged in).

Commands: up, test, down, status, console VM, run VM COMMAND… (see --help). Needs root only for
what qemu needs here (nothing, with TCG); the image build needs root.
"""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VMS = ("msp", "gw", "lan")
# MAC addresses role-setup looks for: 52:54:00:db:<machine>:<card>.
NICS = {"msp": [("wan", "52:54:00:db:01:01")],
        "gw": [("wan", "52:54:00:db:02:01"), ("lan", "52:54:00:db:02:02")],
        "lan": [("lan", "52:54:00:db:03:01")]}


def log(text):
    print("[%s] %s" % (time.strftime("%H:%M:%S", time.gmtime()), text), flush=True)


class LabError(Exception):
    """A failure the user can act on; main() prints it without a traceback."""


class Agent:
    """The lab agent of one VM, over its virtio serial port (a Unix socket qemu listens on)."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = None
        self.buffer = b""
        self.next_id = int(time.time() * 1000) % 1000000 * 1000

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None

    def _connect(self):
        if self.sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(self.path)
            self.sock = sock
            self.buffer = b""

    def run(self, cmd, timeout=60, input_text="", check=True):
        """Runs cmd with bash in the VM; returns (rc, stdout, stderr)."""
        self._connect()
        self.next_id += 1
        request = {"id": self.next_id, "cmd": cmd, "input": input_text, "timeout": timeout}
        self.sock.sendall((json.dumps(request) + "\n").encode())
        deadline = time.monotonic() + timeout + 15
        while True:
            while b"\n" in self.buffer:
                line, self.buffer = self.buffer.split(b"\n", 1)
                try:
                    response = json.loads(line)
                except ValueError:
                    continue
                if response.get("id") != self.next_id:
                    continue  # the late answer to an earlier, abandoned request
                if check and response["rc"] != 0:
                    raise LabError("command failed (rc %d): %s\n%s%s" % (
                        response["rc"], cmd, response["out"], response["err"]))
                return response["rc"], response["out"], response["err"]
            left = deadline - time.monotonic()
            if left <= 0:
                self.close()
                raise LabError("no answer from the agent at %s for: %s" % (self.path, cmd))
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                self.close()
                raise LabError("the agent's socket %s closed (did the VM stop?)" % self.path)
            self.buffer += chunk

    def ping(self, timeout):
        """True once the agent answers (the VM has booted and taken its role)."""
        try:
            self._connect()
            self.run("true", timeout=timeout)
            return True
        except (OSError, LabError):
            self.close()
            return False

    def out(self, cmd, timeout=60):
        return self.run(cmd, timeout=timeout)[1].strip()

    def write(self, path, text, mode="0644"):
        self.run("install -D -m %s /dev/stdin %s" % (mode, path), input_text=text)


class Lab:
    def __init__(self, state_dir, image_dir, memory_mib, boot_timeout):
        self.state = Path(state_dir)
        self.image_dir = Path(image_dir)
        self.memory_mib = memory_mib
        self.boot_timeout = boot_timeout
        self.agents = {vm: Agent(self.state / ("%s.agent" % vm)) for vm in VMS}

    # --- qemu ---------------------------------------------------------------------------------

    @staticmethod
    def accelerator():
        """kvm when the host can run an ordinary guest with it, else tcg (software)."""
        wanted = os.environ.get("DRAWBRIDGE_VM_ACCEL", "auto")
        if wanted != "auto":
            return wanted
        # /dev/kvm alone is not enough: a nested host may offer a KVM that only runs specially
        # built guests; hardware virtualization shows as vmx (Intel) or svm (AMD).
        cpu = Path("/proc/cpuinfo").read_text()
        if os.access("/dev/kvm", os.R_OK | os.W_OK) and (" vmx" in cpu or " svm" in cpu):
            return "kvm"
        return "tcg"

    @staticmethod
    def free_udp_ports(count):
        sockets = []
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        ports = [s.getsockname()[1] for s in sockets]
        for s in sockets:
            s.close()
        return ports

    def qemu_command(self, vm, ports, accel):
        image = self.image_dir / "drawbridge-lab.img"
        cmdline = ("root=/dev/vda rw console=ttyS0,115200 net.ifnames=0 quiet panic=-1 "
                   "drawbridge.role=%s" % vm)
        cmd = ["qemu-system-x86_64", "-name", "drawbridge-lab-%s" % vm,
               "-machine", "pc", "-accel", accel, "-cpu", "host" if accel == "kvm" else "max",
               "-smp", "1", "-m", str(self.memory_mib),
               "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
               "-kernel", str(self.image_dir / "vmlinuz"),
               "-initrd", str(self.image_dir / "initrd.img"), "-append", cmdline,
               "-drive", "file=%s,if=virtio,format=raw,snapshot=on" % image,
               "-device", "virtio-rng-pci",
               "-chardev", "socket,id=console,path=%s,server=on,wait=off,logfile=%s" % (
                   self.state / ("%s.console" % vm), self.state / ("%s.console.log" % vm)),
               "-serial", "chardev:console",
               "-device", "virtio-serial-pci",
               "-chardev", "socket,id=agent,path=%s,server=on,wait=off" % (
                   self.state / ("%s.agent" % vm)),
               "-device", "virtserialport,chardev=agent,name=org.drawbridge.agent",
               "-pidfile", str(self.state / ("%s.pid" % vm)), "-daemonize"]
        for index, (wire, mac) in enumerate(NICS[vm]):
            local, peer = ports[(vm, wire)]
            cmd += ["-netdev", "socket,id=n%d,udp=127.0.0.1:%d,localaddr=127.0.0.1:%d" % (
                index, peer, local),
                "-device", "virtio-net-pci,netdev=n%d,mac=%s" % (index, mac)]
        return cmd

    def pid(self, vm):
        try:
            pid = int((self.state / ("%s.pid" % vm)).read_text().strip())
            os.kill(pid, 0)
            # Only a qemu this lab started: the pid file may be stale and the pid reused.
            if "drawbridge-lab-%s" % vm not in Path("/proc/%d/cmdline" % pid).read_text(
                    errors="replace"):
                return None
            return pid
        except (OSError, ValueError):
            return None

    def up(self):
        image = self.image_dir / "drawbridge-lab.img"
        for f in (image, self.image_dir / "vmlinuz", self.image_dir / "initrd.img"):
            if not f.exists():
                raise LabError("%s is missing: build the image first (sudo vm/build-image.sh "
                               "--out %s)" % (f, self.image_dir))
        self.down(quiet=True)
        self.state.mkdir(parents=True, exist_ok=True)
        accel = self.accelerator()
        p = self.free_udp_ports(4)
        # Each end of a wire sends to the other's local port.
        ports = {("msp", "wan"): (p[0], p[1]), ("gw", "wan"): (p[1], p[0]),
                 ("gw", "lan"): (p[2], p[3]), ("lan", "lan"): (p[3], p[2])}
        (self.state / "lab.json").write_text(json.dumps(
            {"accel": accel, "image": str(image), "ports": p}))
        started = time.monotonic()
        log("booting msp, gw, lan (%s, %d MiB each) from %s" % (accel, self.memory_mib, image))
        for vm in VMS:
            cmd = self.qemu_command(vm, ports, accel)
            (self.state / ("%s.qemu" % vm)).write_text(" ".join(cmd) + "\n")
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                self.down(quiet=True)
                raise LabError("qemu for %s did not start: %s" % (vm, done.stderr.strip()))
        waiting = set(VMS)
        booted = {}
        deadline = time.monotonic() + self.boot_timeout
        while waiting and time.monotonic() < deadline:
            for vm in sorted(waiting):
                if self.pid(vm) is None:
                    raise LabError("%s stopped while booting; its console: %s" % (
                        vm, self.tail_console(vm)))
                if self.agents[vm].ping(timeout=2):
                    booted[vm] = time.monotonic() - started
                    waiting.discard(vm)
            if waiting:
                time.sleep(1)
        if waiting:
            raise LabError("%s did not boot within %d s; consoles: %s" % (
                ", ".join(sorted(waiting)), self.boot_timeout,
                "; ".join(self.tail_console(vm) for vm in sorted(waiting))))
        for vm in VMS:
            rc, _, _ = self.agents[vm].run("systemctl is-active drawbridge-lab-role.service",
                                           check=False)
            if rc != 0:
                journal = self.agents[vm].out(
                    "journalctl -b -u drawbridge-lab-role.service --no-pager | tail -n 20")
                raise LabError("%s did not take its role:\n%s" % (vm, journal))
        log("up: " + ", ".join("%s %.0f s" % (vm, booted[vm]) for vm in VMS) +
            " after start (consoles: %s/<vm>.console)" % self.state)
        return booted

    def tail_console(self, vm):
        try:
            text = (self.state / ("%s.console.log" % vm)).read_text(errors="replace")
        except OSError:
            return "(no console log)"
        return "...%s" % text[-600:]

    def down(self, quiet=False):
        for agent in self.agents.values():
            agent.close()
        stopped = []
        for vm in VMS:
            pid = self.pid(vm)
            if pid is None:
                continue
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                if self.pid(vm) is None:
                    break
                time.sleep(0.1)
            if self.pid(vm) is not None:
                os.kill(pid, signal.SIGKILL)
            stopped.append(vm)
        if self.state.is_dir():
            for f in self.state.iterdir():
                if f.suffix in (".pid", ".agent", ".console", ".qemu", ".json") or \
                        f.name.endswith(".console.log"):
                    f.unlink()
            try:
                self.state.rmdir()
            except OSError:
                pass  # something else is in it: not ours to delete
        if not quiet:
            log("down: stopped %s" % (", ".join(stopped) if stopped else "nothing (not running)"))

    def require_up(self):
        missing = [vm for vm in VMS if self.pid(vm) is None]
        if missing:
            raise LabError("not running: %s (start the lab: vm/lab.sh up)" % ", ".join(missing))

    def status(self):
        info = {}
        try:
            info = json.loads((self.state / "lab.json").read_text())
        except (OSError, ValueError):
            pass
        for vm in VMS:
            pid = self.pid(vm)
            if pid is None:
                print("%-4s not running" % vm)
                continue
            agent = self.agents[vm]
            if not agent.ping(timeout=5):
                print("%-4s qemu pid %d, booting (agent not answering yet)" % (vm, pid))
                continue
            addrs = agent.out("ip -brief addr show | grep -v '^lo '")
            print("%-4s qemu pid %d (%s), role %s, %s" % (
                vm, pid, info.get("accel", "?"),
                agent.out("systemctl is-active drawbridge-lab-role.service || true"),
                agent.out("uptime -p")))
            for line in addrs.splitlines():
                print("       " + line)
            if vm == "gw":
                print("       enforcer: " + agent.out(
                    "systemctl is-active drawbridge-enforcer.service || true"))
            if vm == "msp":
                print("       controller: " + agent.out(
                    "systemctl is-active drawbridge-controller.service || true"))

    def console(self, vm):
        """Attaches the terminal to vm's serial console until Ctrl-] ."""
        import termios
        import tty
        import select
        self.require_up()
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(str(self.state / ("%s.console" % vm)))
        print("connected to %s's serial console (root is logged in); Ctrl-] leaves" % vm)
        sock.sendall(b"\n")
        fd = sys.stdin.fileno()
        saved = termios.tcgetattr(fd) if os.isatty(fd) else None
        try:
            if saved:
                tty.setraw(fd)
            while True:
                ready, _, _ = select.select([fd, sock], [], [])
                if sock in ready:
                    data = sock.recv(4096)
                    if not data:
                        break
                    os.write(sys.stdout.fileno(), data)
                if fd in ready:
                    data = os.read(fd, 1024)
                    if not data or b"\x1d" in data:
                        break
                    sock.sendall(data)
        finally:
            if saved:
                termios.tcsetattr(fd, termios.TCSADRAIN, saved)
            sock.close()
        print()


def main():
    parser = argparse.ArgumentParser(
        prog="vm/lab.sh", description="The Drawbridge VM lab: msp, gw and lan under qemu.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="The image comes from vm/build-image.sh. Environment: DRAWBRIDGE_VM_ACCEL=kvm|tcg "
               "overrides the choice of accelerator (default: kvm when usable).")
    # The options go after the command (`lab.sh up --image-dir DIR`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--state-dir", default=os.environ.get(
        "DRAWBRIDGE_VM_STATE", "/run/drawbridge-vmlab"), help="sockets, pid files, console logs")
    common.add_argument("--image-dir", default=os.environ.get(
        "DRAWBRIDGE_VM_IMAGE_DIR", str(REPO / "build" / "vm")),
        help="where drawbridge-lab.img, vmlinuz and initrd.img are (default: build/vm)")
    common.add_argument("--memory", type=int, default=320, help="MiB per VM (default 320)")
    common.add_argument("--boot-timeout", type=int, default=300, help="seconds (default 300)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", parents=[common],
                   help="boot the three VMs and wait until each has taken its role")
    sub.add_parser("test", parents=[common], help="run the end-to-end scenario in the running VMs")
    sub.add_parser("down", parents=[common], help="stop the VMs (nothing they wrote is kept)")
    sub.add_parser("status", parents=[common], help="which VMs run, their addresses and daemons")
    console = sub.add_parser("console", parents=[common],
                             help="attach to a VM's serial console (Ctrl-] leaves)")
    console.add_argument("vm", choices=VMS)
    run = sub.add_parser("run", parents=[common], help="run a shell command in a VM as root")
    run.add_argument("vm", choices=VMS)
    run.add_argument("words", nargs=argparse.REMAINDER)
    args = parser.parse_args()

    lab = Lab(args.state_dir, args.image_dir, args.memory, args.boot_timeout)
    try:
        if args.command == "up":
            lab.up()
        elif args.command == "down":
            lab.down()
        elif args.command == "status":
            lab.status()
        elif args.command == "console":
            lab.console(args.vm)
        elif args.command == "run":
            lab.require_up()
            rc, out, err = lab.agents[args.vm].run(" ".join(args.words), timeout=600, check=False)
            sys.stdout.write(out)
            sys.stderr.write(err)
            return rc
        elif args.command == "test":
            lab.require_up()
            sys.dont_write_bytecode = True  # no __pycache__ in the source tree
            from vmlab_scenario import Scenario
            return 0 if Scenario(lab.agents).run() else 1
    except LabError as e:
        print("lab.sh: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The end-to-end scenario `vm/lab.sh test` runs in the three lab VMs (see vm/README.md).

The MSP (msp) and the gateway (gw) enrol each other the way docs/deployment.md describes: each
makes its keys, only public keys cross over (copied by this driver, as an admin would). Then the
controller pushes a signed policy whose grants open a window a little later; the provider's
connections are tried before, inside and after it, from approved and unapproved addresses, and
the violations must reach the SOC's syslog collector on msp. One PASS/FAIL line per step.
"""
import json
import time

PROVIDER = "203.0.113.2"
OUTSIDER = "203.0.113.100"  # in the provider's /24, outside its approved /28
ATTACKER = "198.51.100.66"
RDP_HOST = "10.20.0.10"
SSH_HOST = "10.20.0.11"
KEYS = "/root/lab-keys"  # msp: the MSP's signing key, outside any daemon's reach

# How far ahead the window opens and how long it stays open, in seconds: enough for publishing
# and the before-window checks, and for the checks inside, on a slow software-emulated machine.
WINDOW_LEAD = 40
WINDOW_LENGTH = 45
# Repeated denials of one flow within this many seconds make one event (docs/events.md).
AGGREGATION_SECONDS = 5

POLICY = """version = 1
site = "lab"
serial = {serial}
timezone = "UTC"

[providers.acme]
addresses = ["203.0.113.0/28", "2001:db8:100::/48"]

[[links]]
name = "rdp-servers"
provider = "acme"
direction = "inbound"
hosts = ["{rdp}"]
ports = ["tcp/3389"]
windows = []

[[links]]
name = "ssh-maintenance"
provider = "acme"
direction = "inbound"
hosts = ["{ssh}"]
ports = ["tcp/22"]
windows = []

[[grants]]
link = "rdp-servers"
ticket = "CHG-100"
from = {open}
until = {close}

[[grants]]
link = "ssh-maintenance"
ticket = "CHG-101"
from = {open}
until = {close}

[guard]
ports = ["tcp/22", "tcp/5900"]
"""


def rfc3339(epoch):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Scenario:
    def __init__(self, agents):
        self.msp = agents["msp"]
        self.gw = agents["gw"]
        self.lan = agents["lan"]
        self.failures = 0
        self.steps = 0
        self.started = time.monotonic()

    def step(self, name, ok, detail=""):
        self.steps += 1
        if not ok:
            self.failures += 1
        print("%s  %s%s" % ("PASS" if ok else "FAIL", name, " — " + detail if detail else ""),
              flush=True)
        return ok

    def probe(self, source, host, port):
        """(connected, what the probe printed) for one TCP connection from msp."""
        rc, out, err = self.msp.run(
            "/usr/lib/drawbridge-lab/probe --from %s --to %s --port %d --timeout 4" % (
                source, host, port), check=False)
        return rc == 0, (out + err).strip()

    def expect_connection(self, name, source, host, port, allowed):
        connected, said = self.probe(source, host, port)
        return self.step(name, connected == allowed, said)

    def controller_status(self):
        rc, out, _ = self.msp.run(
            "drawbridge-controller status --config /etc/drawbridge/controller.toml --json",
            check=False)
        return out.replace(" ", "").replace("\n", "") if rc == 0 else ""

    def wait_status(self, text, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if text in self.controller_status():
                return True
            time.sleep(1)
        return False

    def gw_clock_offset(self):
        """gw's clock minus this host's: windows open and close by gw's clock."""
        before = time.time()
        gw_now = float(self.gw.out("date +%s.%N"))
        return gw_now - (before + time.time()) / 2

    def sleep_until_gw(self, gw_epoch, offset):
        delay = gw_epoch - offset - time.time()
        if delay > 0:
            time.sleep(delay)

    # --- steps --------------------------------------------------------------------------------

    def network_open_without_enforcer(self):
        self.gw.run("systemctl stop drawbridge-enforcer.service; "
                    "drawbridge-enforcer flush >/dev/null 2>&1 || true", check=False)
        return self.expect_connection(
            "routing: without a policy, msp reaches lan %s tcp/3389 through gw" % RDP_HOST,
            PROVIDER, RDP_HOST, 3389, True)

    def enrol(self):
        """Keys made where they are used; only public keys are copied across."""
        msp, gw = self.msp, self.gw
        msp.run("rm -rf %s && mkdir -m 0700 %s && cd %s && "
                "drawbridge-controller keygen --out msp --curve >/dev/null" % (KEYS, KEYS, KEYS))
        gw.run("rm -f /etc/drawbridge/gw.curve /etc/drawbridge/gw.curve.pub /etc/drawbridge/gw "
               "/etc/drawbridge/gw.pub && cd /etc/drawbridge && "
               "drawbridge-controller keygen --out gw --curve >/dev/null && rm gw gw.pub")
        msp_sign_pub = msp.out("cat %s/msp.pub" % KEYS)
        msp_curve_pub = msp.out("cat %s/msp.curve.pub" % KEYS)
        gw_curve_pub = gw.out("cat /etc/drawbridge/gw.curve.pub")
        # The controller runs as the user drawbridge and refuses a secret key others may read.
        msp.run("install -m 0600 -o drawbridge -g drawbridge %s/msp.curve "
                "/etc/drawbridge/controller.curve" % KEYS)
        msp.write("/etc/drawbridge/controller.toml", "\n".join([
            'listen = "tcp://%s:7400"' % PROVIDER,
            'curve_key = "/etc/drawbridge/controller.curve"',
            "heartbeat_seconds = 1",
            "",
            "[[enforcer]]",
            'site = "lab"',
            'name = "gw"',
            'key = "%s"' % gw_curve_pub, ""]))
        gw.write("/etc/drawbridge/trust.toml",
                 'site = "lab"\nprovider_keys = ["%s"]\n' % msp_sign_pub)
        gw.write("/etc/drawbridge/enforcer.toml", "\n".join([
            'trust = "/etc/drawbridge/trust.toml"',
            "",
            "[controller]",
            'endpoint = "tcp://%s:7400"' % PROVIDER,
            'server_key = "%s"' % msp_curve_pub,
            'client_key = "/etc/drawbridge/gw.curve"',
            "heartbeat_seconds = 1",
            "",
            "[events]",
            'organization = "Drawbridge lab"',
            "aggregation_seconds = %d" % AGGREGATION_SECONDS,
            "",
            "[[events.syslog]]",
            'name = "soc"',
            'transport = "tcp"',
            'host = "%s"' % PROVIDER,
            "port = 601",
            'format = "ecs"', ""]))
        # Start clean: no bundle or serial left from an earlier run of the scenario.
        gw.run("systemctl stop drawbridge-enforcer.service; rm -rf /var/lib/drawbridge/*",
               check=False)
        msp.run("systemctl stop drawbridge-controller.service; "
                "rm -rf /var/lib/drawbridge-controller/*; : > /var/log/soc/drawbridge.log",
                check=False)
        msp.run("systemctl restart drawbridge-controller.service")
        gw.run("systemctl restart drawbridge-enforcer.service")
        connected = self.wait_status('"state":"connected"', 60)
        return self.step("enrol: keys made in msp and gw, the enforcer (systemd unit) connects "
                         "to the controller over CURVE", connected,
                         "" if connected else self.diagnose())

    def diagnose(self):
        return "controller: %s | enforcer: %s" % (
            self.msp.run("journalctl -b -u drawbridge-controller --no-pager | tail -n 5",
                         check=False)[1].strip().replace("\n", " / "),
            self.gw.run("journalctl -b -u drawbridge-enforcer --no-pager | tail -n 5",
                        check=False)[1].strip().replace("\n", " / "))

    def publish(self, offset):
        gw_now = time.time() + offset
        self.window_open = int(gw_now) + WINDOW_LEAD
        self.window_close = self.window_open + WINDOW_LENGTH
        policy = POLICY.format(serial=1, rdp=RDP_HOST, ssh=SSH_HOST,
                               open=rfc3339(self.window_open), close=rfc3339(self.window_close))
        self.msp.write("%s/lab-policy.toml" % KEYS, policy, mode="0600")
        self.msp.run("cd %s && drawbridge-controller sign lab-policy.toml --key msp "
                     "--out lab-policy.bundle >/dev/null && drawbridge-controller publish "
                     "lab-policy.bundle --config /etc/drawbridge/controller.toml" % KEYS)
        applied = self.wait_status('"applied_serial":1', 60)
        return self.step("publish: the controller pushes policy serial 1 signed by the MSP; gw "
                         "applies it", applied,
                         "window %s..%s UTC" % (rfc3339(self.window_open)[11:19],
                                                rfc3339(self.window_close)[11:19])
                         if applied else self.diagnose())

    def ssh_login(self):
        """A real OpenSSH login as acme on lan, host key checked against lan's own."""
        self.msp.run("rm -f /root/.ssh/acme_ed25519* && mkdir -p -m 0700 /root/.ssh && "
                     "ssh-keygen -q -t ed25519 -N '' -C acme@msp -f /root/.ssh/acme_ed25519")
        self.lan.write("/home/acme/.ssh/authorized_keys",
                       self.msp.out("cat /root/.ssh/acme_ed25519.pub") + "\n", mode="0600")
        self.lan.run("chown -R acme:acme /home/acme/.ssh && chmod 0700 /home/acme/.ssh")
        host_key = self.lan.out("cat /etc/ssh/ssh_host_ed25519_key.pub").split()
        self.msp.write("/root/.ssh/known_hosts", "%s %s %s\n" % (SSH_HOST, host_key[0],
                                                                   host_key[1]))
        rc, out, err = self.msp.run(
            "ssh -b %s -i /root/.ssh/acme_ed25519 -o BatchMode=yes -o ConnectTimeout=15 "
            "-o StrictHostKeyChecking=yes acme@%s 'echo \"$(whoami)@$(hostname)\"'" % (
                PROVIDER, SSH_HOST), timeout=60, check=False)
        said = (out + err).strip().replace("\n", " / ")
        return rc == 0 and out.strip() == "acme@lan", said

    def soc_events(self):
        rc, out, _ = self.msp.run("cat /var/log/soc/drawbridge.log", check=False)
        events = []
        for line in out.splitlines():
            start = line.find("{")  # the ECS body after the RFC 5424 header
            if start < 0:
                continue
            try:
                events.append(json.loads(line[start:]))
            except ValueError:
                continue
        return events

    def wait_soc(self, what, match, seconds):
        deadline = time.monotonic() + seconds
        while True:
            found = [e for e in self.soc_events() if match(e)]
            if found or time.monotonic() > deadline:
                break
            time.sleep(2)
        detail = found[0].get("message", "") if found else "not in /var/log/soc/drawbridge.log"
        return self.step("SOC: %s" % what, bool(found), detail)

    @staticmethod
    def denied(source, reason):
        def match(e):
            return (e.get("event", {}).get("action") == "connection-denied" and
                    e.get("source", {}).get("ip") == source and
                    e.get("event", {}).get("reason") == reason)
        return match

    @staticmethod
    def action(name):
        return lambda e: e.get("event", {}).get("action") == name

    def run(self):
        print("Drawbridge VM lab scenario: msp (MSP, provider, attacker, SOC) ↔ gw (enforcer) "
              "↔ lan (servers)", flush=True)
        if not self.network_open_without_enforcer():
            return self.finish()
        if not self.enrol():
            return self.finish()
        offset = self.gw_clock_offset()
        if not self.publish(offset):
            return self.finish()

        self.expect_connection("before the window: provider %s → %s tcp/3389 refused" % (
            PROVIDER, RDP_HOST), PROVIDER, RDP_HOST, 3389, False)
        self.expect_connection("before the window: provider %s → %s tcp/22 refused" % (
            PROVIDER, SSH_HOST), PROVIDER, SSH_HOST, 22, False)

        self.sleep_until_gw(self.window_open + 2, offset)
        self.expect_connection("inside the window: provider %s reaches %s tcp/3389" % (
            PROVIDER, RDP_HOST), PROVIDER, RDP_HOST, 3389, True)
        self.expect_connection("inside the window: unapproved %s → %s tcp/3389 refused" % (
            OUTSIDER, RDP_HOST), OUTSIDER, RDP_HOST, 3389, False)
        self.expect_connection("inside the window: attacker %s → %s tcp/3389 refused" % (
            ATTACKER, RDP_HOST), ATTACKER, RDP_HOST, 3389, False)
        ok, said = self.ssh_login()
        self.step("inside the window: SSH login acme@%s from %s (OpenSSH, host key checked)" % (
            SSH_HOST, PROVIDER), ok, said)
        if time.time() + offset > self.window_close:
            self.step("the checks inside the window finished before it closed", False,
                      "raise WINDOW_LENGTH in vm/vmlab_scenario.py")

        self.sleep_until_gw(self.window_close + 2, offset)
        self.expect_connection("after the window: provider %s → %s tcp/3389 refused" % (
            PROVIDER, RDP_HOST), PROVIDER, RDP_HOST, 3389, False)
        self.expect_connection("after the window: provider %s → %s tcp/22 refused" % (
            PROVIDER, SSH_HOST), PROVIDER, SSH_HOST, 22, False)

        wait = AGGREGATION_SECONDS + 20
        self.wait_soc("the provider's try before the window arrived (outside-window)",
                      self.denied(PROVIDER, "outside-window"), wait)
        self.wait_soc("the unapproved address's try arrived (unapproved-source)",
                      self.denied(OUTSIDER, "unapproved-source"), wait)
        self.wait_soc("the attacker's try arrived (unapproved-source)",
                      self.denied(ATTACKER, "unapproved-source"), wait)
        self.wait_soc("the window's opening arrived (window-opened)",
                      self.action("window-opened"), wait)
        self.wait_soc("the provider's session inside the window arrived "
                      "(provider-session-started)", self.action("provider-session-started"), wait)
        return self.finish()

    def finish(self):
        elapsed = time.monotonic() - self.started
        if self.failures:
            print("FAIL: %d of %d steps failed (%.0f s)" % (self.failures, self.steps, elapsed))
            return False
        print("PASS: all %d steps (%.0f s)" % (self.steps, elapsed))
        return True

"""What a qemu VM of the lab is told, and the guest side that reads it.

The controller gives each VM four qemu fw_cfg files under opt/podnet/
(`fw_cfg_files()`); the unit podnet-vm-config, baked into the image
(GUEST_FILES), reads them at every boot from
/sys/firmware/qemu_fw_cfg/by_name/opt/podnet/<name>/raw and writes
hostname, host key, root's authorized_keys and systemd-networkd files.
Both sides of that format live here, in one place.

Routing in the guest: the main table's default goes via the underlay
gateway, so forwarded (pod) traffic always takes the lab fabric. The
management NIC is qemu user-mode networking (SSH arrives on a forwarded
loopback port; apt and pip leave through it): its DHCP routes go to table
MGMT_TABLE, which only traffic the VM itself originates (`iif lo`) may
consult, after the main table's specific routes and the lab prefixes.
"""
import ipaddress
import re
from dataclasses import dataclass

from ansible.module_utils.podnet.core import names
from ansible.module_utils.podnet.core.errors import SpecError

FW_CFG_PREFIX = 'opt/podnet/'
FW_CFG_NAMES = ('hostname', 'network', 'host_key', 'authorized_keys')
FW_CFG_DIR = '/sys/firmware/qemu_fw_cfg/by_name/opt/podnet'
MGMT_TABLE = 100
HOST_KEY = '/etc/ssh/ssh_host_ed25519_key'
UNIT = 'podnet-vm-config.service'


@dataclass(frozen=True)
class VmConfig:
    """What one VM learns at boot."""
    hostname: str
    underlay_mac: str
    underlay_cidr: str      # the VM's address/prefix, e.g. 10.15.1.11/24
    underlay_gateway: str
    mgmt_mac: str
    lab_prefixes: tuple     # cluster CIDR, rack subnets, outside: never via mgmt
    host_key: str           # OpenSSH ed25519 private key text
    authorized_keys: str
    underlay_mtu: int = 1500


MAC = re.compile(r'^[0-9a-f]{2}(:[0-9a-f]{2}){5}$')


def validate(config):
    """SpecError naming the VM and field of the first bad value."""
    def bad(field, why):
        raise SpecError('%s: %s' % (config.hostname, field), why)
    if not names.HOSTNAME.match(config.hostname):
        bad('hostname', names.NOT_A_HOSTNAME)
    for field in ('underlay_mac', 'mgmt_mac'):
        if not MAC.match(getattr(config, field)):
            bad(field, 'not a lowercase MAC: %r' % getattr(config, field))
    try:
        interface = ipaddress.IPv4Interface(config.underlay_cidr)
        if ipaddress.IPv4Address(config.underlay_gateway) not in interface.network:
            bad('underlay_gateway', '%s is not in %s' % (config.underlay_gateway, interface.network))
        for prefix in config.lab_prefixes:
            ipaddress.IPv4Network(prefix)
    except ValueError as exc:
        bad('underlay', str(exc))
    if 'PRIVATE KEY' not in config.host_key:
        bad('host_key', 'not an OpenSSH private key')


def fw_cfg_files(config):
    """{fw_cfg name: text} for one VM, validated first."""
    validate(config)
    network = ''.join('%s=%s\n' % item for item in (
        ('UNDERLAY_MAC', config.underlay_mac), ('UNDERLAY_CIDR', config.underlay_cidr),
        ('UNDERLAY_GATEWAY', config.underlay_gateway), ('UNDERLAY_MTU', config.underlay_mtu),
        ('MGMT_MAC', config.mgmt_mac), ('LAB_PREFIXES', ' '.join(config.lab_prefixes))))
    files = {'hostname': config.hostname + '\n', 'network': network,
             'host_key': config.host_key.strip() + '\n',
             'authorized_keys': config.authorized_keys.strip() + '\n'}
    return {FW_CFG_PREFIX + name: files[name] for name in FW_CFG_NAMES}


CONFIG_SCRIPT = r'''#!/bin/sh
# podnet-vm-config: configure this VM from the qemu fw_cfg files the lab
# controller gave it (see module_utils/podnet/vmguest.py). Runs every boot.
set -eu
dir=%(dir)s
modprobe qemu_fw_cfg
[ -d "$dir" ] || { echo "podnet-vm-config: no fw_cfg files under $dir" >&2; exit 1; }
get() { cat "$dir/$1/raw"; }

name=$(get hostname)
echo "$name" >/etc/hostname
echo "$name" >/proc/sys/kernel/hostname
printf '127.0.0.1 localhost\n127.0.1.1 %%s\n' "$name" >/etc/hosts

umask 077
get host_key >%(host_key)s
ssh-keygen -y -f %(host_key)s >%(host_key)s.pub
mkdir -p /root/.ssh
get authorized_keys >/root/.ssh/authorized_keys
umask 022

get network | while IFS='=' read -r key value; do
  case $key in
    UNDERLAY_MAC|UNDERLAY_CIDR|UNDERLAY_GATEWAY|UNDERLAY_MTU|MGMT_MAC|LAB_PREFIXES)
      printf '%%s\n' "$value" >"/run/podnet-$key" ;;
  esac
done
v() { cat "/run/podnet-$1"; }
net=/etc/systemd/network
cat >$net/10-podnet-underlay.network <<EOF
[Match]
MACAddress=$(v UNDERLAY_MAC)
[Link]
MTUBytes=$(v UNDERLAY_MTU)
[Network]
Address=$(v UNDERLAY_CIDR)
Gateway=$(v UNDERLAY_GATEWAY)
LinkLocalAddressing=no
IPv6AcceptRA=no
EOF
{
  cat <<EOF
[Match]
MACAddress=$(v MGMT_MAC)
[Network]
DHCP=ipv4
LinkLocalAddressing=no
IPv6AcceptRA=no
[DHCPv4]
RouteTable=%(table)d
UseDNS=no
UseHostname=no
[RoutingPolicyRule]
Table=main
SuppressPrefixLength=0
Priority=100
[RoutingPolicyRule]
IncomingInterface=lo
Table=%(table)d
Priority=200
EOF
  for prefix in $(v LAB_PREFIXES); do
    printf '[RoutingPolicyRule]\nTo=%%s\nTable=main\nPriority=110\n' "$prefix"
  done
} >$net/20-podnet-mgmt.network
'''.lstrip() % {'dir': FW_CFG_DIR, 'host_key': HOST_KEY, 'table': MGMT_TABLE}

CONFIG_UNIT = '''[Unit]
Description=Configure this podnet VM from qemu fw_cfg
DefaultDependencies=no
After=local-fs.target
Before=sysinit.target systemd-networkd.service ssh.service network-pre.target
Wants=network-pre.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/podnet-vm-config

[Install]
WantedBy=sysinit.target
'''

# path in the guest: (text, mode)
GUEST_FILES = {
    '/usr/local/sbin/podnet-vm-config': (CONFIG_SCRIPT, 0o755),
    '/etc/systemd/system/' + UNIT: (CONFIG_UNIT, 0o644),
    '/etc/fstab': ('/dev/vda / ext4 rw,errors=remount-ro 0 1\n', 0o644),
    '/etc/resolv.conf': ('nameserver 10.0.2.3\n', 0o644),  # qemu user-mode DNS
    '/etc/ssh/sshd_config.d/podnet.conf': (
        'HostKey %s\nPasswordAuthentication no\n' % HOST_KEY, 0o644),
    # podnet owns cni0, veths, flannel.1 and their routes: networkd must
    # leave links and routes it was not told about alone.
    '/etc/systemd/networkd.conf.d/podnet.conf': (
        '[Network]\nManageForeignRoutes=no\nManageForeignRoutingPolicyRules=no\n', 0o644),
}
ENABLE = ('systemd-networkd.service', UNIT)
# e2scrub_reap costs ~7 s a boot; apt's timers would hold the dpkg lock
# while a converge wants it.
MASK = ('e2scrub_reap.service', 'apt-daily.timer', 'apt-daily-upgrade.timer')

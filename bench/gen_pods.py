"""Write N pods as ordinary Kubernetes YAML: one container each, sleeping.

  python bench/gen_pods.py 1000 > .lab/pods-1000.yaml          # the scheduler spreads them
  python bench/gen_pods.py 1000 --pin 20 > .lab/pods-1000.yaml # spec.nodeName node1..node20, round robin

Each pod is namespace `scale`, name `p0001`..., label app=scale and
group=g<i mod 10> (for policies that select a part), one container `sleep`
(image busybox, command `sleep infinity`, which runs the node's own sleep:
podnet maps images to local commands) declaring port 8080.
"""
import argparse
import sys

POD = '''---
apiVersion: v1
kind: Pod
metadata:
  name: {name}
  namespace: scale
  labels: {{app: scale, group: g{group}}}
spec:
{pin}  containers:
  - name: sleep
    image: busybox
    command: [sleep, infinity]
    ports:
    - {{name: http, containerPort: 8080}}
'''
NAMESPACE = '''---
apiVersion: v1
kind: Namespace
metadata:
  name: scale
  labels: {ns: scale}
'''


def pods(count, pin):
    width = len(str(count))
    for index in range(count):
        node = '  nodeName: node%d\n' % (index % pin + 1) if pin else ''
        yield POD.format(name='p%0*d' % (width, index + 1), group=index % 10, pin=node)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('count', type=int, help='how many pods')
    parser.add_argument('--pin', type=int, metavar='NODES', default=0,
                        help='pin pod i to node (i mod NODES) + 1 with spec.nodeName')
    args = parser.parse_args(argv)
    if args.count < 1 or args.pin < 0:
        parser.error('count must be at least 1 and --pin at least 0')
    sys.stdout.write(NAMESPACE + ''.join(pods(args.count, args.pin)))


if __name__ == '__main__':
    main()

"""Runs one tlsfuzzer script with Python's `random` seeded first, so that its
`-n` sampling (random.sample) draws the same subtests on every run. Usage: run-script.py SEED SCRIPT [script arguments...], where SCRIPT is a
file name under scripts/ (test-tls13-conversation.py) or a module name under
tlsfuzzer/_apps (test_tls13_conversation). The scripts in scripts/ are
symbolic links to _stub.py upstream; the code is in tlsfuzzer/_apps/."""
import os
import random
import runpy
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, 'tlsfuzzer'))


def main():
    seed = int(sys.argv[1])
    name = sys.argv[2]
    if name.endswith('.py'):
        name = name[:-3]
    module = 'tlsfuzzer._apps.' + name.replace('-', '_')
    sys.argv = [name] + sys.argv[3:]
    random.seed(seed)
    # The subtests are drawn with random.sample (imported by name when the
    # script module runs, i.e. after this). Key generation draws from the
    # global generator a varying number of times before that, so sampling
    # gets a generator of its own.
    sampler = random.Random(seed)
    random.sample = sampler.sample
    random.shuffle = sampler.shuffle
    runpy.run_module(module, run_name='__main__', alter_sys=True)


if __name__ == '__main__':
    main()

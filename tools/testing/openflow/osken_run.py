#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Runs os-ken applications as a controller listening for switches, the
way neutron's OVS agent embeds os-ken (os-ken 4 has no osken-manager).

Usage: osken_run.py PORT APP_MODULE...   (APP_MODULE: a file or module)
"""

import os
import sys


def main():
    port, apps = int(sys.argv[1]), sys.argv[2:]
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from os_ken import cfg
    from os_ken.base import app_manager

    cfg.CONF(args=[], project="os_ken")
    cfg.CONF.set_override("ofp_tcp_listen_port", port)
    cfg.CONF.set_override("ofp_listen_host", "127.0.0.1" if not os.environ.get("OSKEN_LISTEN_HOST")
                          else os.environ["OSKEN_LISTEN_HOST"])
    modules = [os.path.splitext(os.path.basename(a))[0] if a.endswith(".py") else a for a in apps]
    app_manager.AppManager.run_apps(modules)


if __name__ == "__main__":
    main()

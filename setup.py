"""Packaging for buildfarm.

The source folders ``master/``, ``slave/`` and ``common/`` sit at the top of the
repository and are installed as ``buildfarm.master``, ``buildfarm.slave`` and
``buildfarm.common`` (``buildfarm`` itself is a namespace package).  The twistd
plugin drop-ins in ``twisted/plugins/`` are installed into ``twisted.plugins``.
"""

import os

from setuptools import setup
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))
TOPS = {"master": "buildfarm.master", "slave": "buildfarm.slave", "common": "buildfarm.common"}


def find_mapped_packages():
    """Every Python package under the mapped top folders, with its folder."""
    packages, package_dir = [], {}
    for folder, dotted in TOPS.items():
        for dirpath, dirnames, filenames in os.walk(os.path.join(HERE, folder)):
            dirnames[:] = [d for d in dirnames if d != "__pycache__"]
            if "__init__.py" not in filenames:
                continue
            rel = os.path.relpath(dirpath, HERE)
            name = dotted + rel[len(folder):].replace(os.sep, ".")
            packages.append(name)
            package_dir[name] = rel
    return packages, package_dir


class editable_wheel_with_plugins(editable_wheel):
    """An editable install that twistd can find the plugin drop-ins of.

    Twisted finds drop-ins by scanning each ``sys.path`` entry for a ``twisted/plugins``
    folder, which setuptools' editable finder never puts on ``sys.path``.  So the editable
    wheel also gets a ``.pth`` naming ``build/twisted-plugins``, a folder that holds only
    ``twisted/plugins/`` with links to the drop-ins here (nothing else becomes importable).
    """

    def _install_namespaces(self, installation_dir, pth_prefix):
        super()._install_namespaces(installation_dir, pth_prefix)
        link_root = os.path.join(HERE, "build", "twisted-plugins")
        link_dir = os.path.join(link_root, "twisted", "plugins")
        os.makedirs(link_dir, exist_ok=True)
        source_dir = os.path.join(HERE, "twisted", "plugins")
        for name in os.listdir(source_dir):
            if name.endswith(".py"):
                link = os.path.join(link_dir, name)
                if os.path.lexists(link):
                    os.remove(link)
                os.symlink(os.path.join(source_dir, name), link)
        with open(os.path.join(installation_dir, "buildfarm-twisted-plugins.pth"), "w") as f:
            f.write(link_root + "\n")


packages, package_dir = find_mapped_packages()
version = {}
with open(os.path.join(HERE, "common", "version.py")) as f:
    exec(f.read(), version)

setup(
    name="buildfarm",
    version=version["VERSION"],
    description="A build-and-fleet system for release engineering teams, on Twisted",
    packages=packages + ["twisted.plugins"],
    package_dir={**package_dir, "twisted.plugins": "twisted/plugins"},
    package_data={
        "buildfarm.master": ["db/migrations/*.ini", "db/migrations/*.mako", "sample.cfg",
                             "www/templates/*.html", "www/static/*"],
        "buildfarm.common": ["references/*.json"],  # the API references buildfarm.common.client reads
    },
    include_package_data=True,
    python_requires=">=3.11",
    install_requires=[
        "twisted[tls,conch]>=24.3.0,<27",  # common/pbwire.py and master/pb/ rely on Banana and PB internals
        "zope.interface>=6.0",
        "sqlalchemy>=2.0",
        "alembic>=1.13",
        "jinja2>=3.1",
        "treq>=23.11.0",
        "klein>=24.8.0",
        "psycopg[binary]>=3.1",
        "croniter>=2.0",
        "boto3>=1.28",
        "prometheus-client>=0.17",
        "bcrypt>=4.0",  # www auth: HTPasswdAuth's bcrypt entries (master/auth/webauth.py)
        "mohawk>=1.1",  # Hawk credentials on every HTTP surface (master/auth/), as Taskcluster signs
        "taskcluster>=60.0",  # the official client: buildfarm.common.client builds on createApiClient
        "pika>=1.3,<2",  # c['mq'] amqp: events to RabbitMQ through pika's Twisted adapter (master/mq/)
    ],
    extras_require={
        "test": ["pytest>=8.0", "pytest-twisted>=1.14", "pytest-timeout>=2.3", "pytest-xdist>=3.5",
                 "ruff>=0.5", "moto[server,ec2]>=5.0", "playwright>=1.40",
                 "aiosmtpd>=1.4", "jsonschema>=4.0"],  # a real SMTP server for the MailNotifier tests
    },
    cmdclass={"editable_wheel": editable_wheel_with_plugins},
    entry_points={
        "console_scripts": [
            "buildmaster = buildfarm.master.scripts.runner:main",
            "buildslave = buildfarm.slave.scripts.runner:main",
            "isolateserver = buildfarm.common.isolateserver:main",
            "swarming = buildfarm.common.swarming:main",
        ],
    },
)

"""The services the master serves in Taskcluster's layout (docs/taskcluster.md): each one's
name, title, description and schemas, and the route tables whose declarations make its
reference, and the services' exchanges (master/mq/exchanges.py), whose exchange references are
served next to them.  ``BuildMaster`` hands ``CATALOG`` to the web side as ``master.api_catalog``
(www/interfaces.py): www may not import the SlaveAPI, whose routes are one of the tables.
"""

from buildfarm.master.authapi.api import AuthAPI
from buildfarm.master.authapi.apireference import AUTH
from buildfarm.master.cas.api import IsolateAPI
from buildfarm.master.cas.apireference import CAS
from buildfarm.master.http.references import APICatalog
from buildfarm.master.mq.exchanges import BUILDFARM_EXCHANGES
from buildfarm.master.objectservice.api import ObjectAPI
from buildfarm.master.objectservice.apireference import OBJECT_SERVICE
from buildfarm.master.queue.api import QueueAPI
from buildfarm.master.queue.apireference import QUEUE
from buildfarm.master.queue.events import QUEUE_EXCHANGES
from buildfarm.master.slaveapi.apireference import SLAVEAPI
from buildfarm.master.slaveapi.resources import SlaveAPI
from buildfarm.master.tasks.api import SwarmingAPI
from buildfarm.master.tasks.apireference import TASKS
from buildfarm.master.www.api import JSONAPI
from buildfarm.master.www.apireference import BUILDFARM

CATALOG = APICatalog(services=(BUILDFARM, SLAVEAPI, TASKS, CAS, AUTH, QUEUE, OBJECT_SERVICE),
                     tables=(JSONAPI.routes, SlaveAPI.routes, SwarmingAPI.routes, IsolateAPI.routes,
                             AuthAPI.routes, QueueAPI.routes, ObjectAPI.routes),
                     exchanges=(BUILDFARM_EXCHANGES, QUEUE_EXCHANGES))

from twisted.python import usage
class Options(usage.Options):
    optParameters = [["basedir", "d", ".", "x"]]
def makeService(options):
    from twisted.application.service import Service
    return Service()

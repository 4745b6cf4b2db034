"""The pure core: windows, one partition's state and how events change it, queries and verification.

Nothing here imports Faust, aiokafka or any other layer of borderflow
(``make lint`` checks it with import-linter): the rules of the contract can be
read, and tested, without a broker.
"""

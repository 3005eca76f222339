"""Django peer for Latch's benchmarks: the simplejwt routes on Django REST framework + SimpleJWT."""

"""Django's argon2id hasher at Latch's default cost (OWASP: m=19456 KiB, t=2, p=1)."""
from django.contrib.auth.hashers import Argon2PasswordHasher


class BenchArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19456
    parallelism = 1

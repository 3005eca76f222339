"""The simplejwt routes: SimpleJWT's own views for the tokens, two small views for the rest."""
from django.urls import path
from rest_framework_simplejwt.views import (
    TokenObtainPairView,
    TokenRefreshView,
    TokenVerifyView,
)

from benchsite.views import GetUserView, RegisterView

urlpatterns = [
    path("auth/token", TokenObtainPairView.as_view()),
    path("auth/token/refresh", TokenRefreshView.as_view()),
    path("auth/token/verify", TokenVerifyView.as_view()),
    path("auth/register", RegisterView.as_view()),
    path("auth/getuser", GetUserView.as_view()),
]

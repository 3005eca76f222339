"""register (201 with a token pair, 409 when the username is taken) and getuser ({"username"})."""
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError
from rest_framework import status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

REQUIRED = ["This field is required."]


def missing_fields(data, fields):
    return {f: REQUIRED for f in fields if not data.get(f)}


class RegisterView(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def post(self, request):
        errors = missing_fields(request.data, ("username", "password"))
        if errors:
            return Response(errors, status=status.HTTP_400_BAD_REQUEST)
        username, password = request.data["username"], request.data["password"]
        try:
            validate_password(password)
        except ValidationError as e:
            return Response({"password": e.messages}, status=status.HTTP_400_BAD_REQUEST)
        users = get_user_model().objects
        # Case-insensitive usernames, as Latch's.
        if users.filter(username__iexact=username).exists():
            return Response({"detail": "User already exists"}, status=status.HTTP_409_CONFLICT)
        try:
            user = users.create_user(username=username, password=password)
        except IntegrityError:
            return Response({"detail": "User already exists"}, status=status.HTTP_409_CONFLICT)
        refresh = RefreshToken.for_user(user)
        return Response(
            {"refresh": str(refresh), "access": str(refresh.access_token)},
            status=status.HTTP_201_CREATED,
        )


class GetUserView(APIView):
    permission_classes = [IsAuthenticated]

    def get(self, request):
        return Response({"username": request.user.username})

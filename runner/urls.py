app_name = "runner"

urlpatterns: list = []

from engine import create_app

app = create_app()

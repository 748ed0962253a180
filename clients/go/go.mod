module lockservice/client

go 1.19

{
  "targets": [
    {
      "target_name": "record_crc",
      "sources": ["record-crc.c"],
      "cflags": ["-O3", "-std=c11"]
    }
  ]
}

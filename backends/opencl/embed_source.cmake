# cmake -DIN=file.cl -DOUT=file.h -P embed_source.cmake: write IN as a NUL-terminated C array
# named ocl_kernels_src. Hex bytes, not a string literal: C11 caps string literals at 4095
# characters (-Wpedantic -Werror) and the kernel source is longer.
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," body "${hex}")
string(REGEX REPLACE "((0x[0-9a-f][0-9a-f],){16})" "\\1\n" body "${body}")
file(WRITE ${OUT} "/* Generated from opencl_kernels.cl by embed_source.cmake; do not edit. */\n"
  "static const char ocl_kernels_src[] = {\n${body}0x00};\n")

# Install step for the systemd unit and the settings example (run by `cmake --install` and cpack).
#
# Prefix /usr (a package, or `make install PREFIX=/usr`): the unit goes to /lib/systemd/system
# and the settings to /etc/latch/latch.env, which is never overwritten once there.
# Any other prefix (the default /usr/local): the unit goes to PREFIX/lib/systemd/system, which
# systemd also reads, with ExecStart naming PREFIX/bin/latch; the settings example goes to
# PREFIX/share/doc/latch/latch.env, to be copied to /etc/latch/latch.env.
# file(INSTALL) adds $ENV{DESTDIR} in front of every destination itself.
string(REGEX REPLACE "/+$" "" prefix "${CMAKE_INSTALL_PREFIX}")
set(read_only OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)

if(prefix STREQUAL "/usr")
  file(INSTALL "${LATCH_PACKAGING_DIR}/latch.service" DESTINATION /lib/systemd/system
       PERMISSIONS ${read_only})
  if(EXISTS "$ENV{DESTDIR}/etc/latch/latch.env")
    message(STATUS "Kept: $ENV{DESTDIR}/etc/latch/latch.env (already there; latch.env in "
                   "share/doc/latch shows the current example)")
  else()
    # Root-only: it may hold the SMTP password and the JWT secret; systemd reads it as root.
    file(INSTALL "${LATCH_PACKAGING_DIR}/latch.env" DESTINATION /etc/latch
         PERMISSIONS OWNER_READ OWNER_WRITE)
  endif()
else()
  file(READ "${LATCH_PACKAGING_DIR}/latch.service" unit)
  string(REPLACE "/usr/bin/latch" "${prefix}/bin/latch" unit "${unit}")
  string(REPLACE "/usr/share/doc/latch" "${prefix}/share/doc/latch" unit "${unit}")
  file(WRITE "${LATCH_PACKAGING_BUILD_DIR}/latch.service" "${unit}")
  file(INSTALL "${LATCH_PACKAGING_BUILD_DIR}/latch.service"
       DESTINATION "${prefix}/lib/systemd/system" PERMISSIONS ${read_only})
  file(INSTALL "${LATCH_PACKAGING_DIR}/latch.env" DESTINATION "${prefix}/share/doc/latch"
       PERMISSIONS ${read_only})
  message(STATUS "Settings example: ${prefix}/share/doc/latch/latch.env (copy it to "
                 "/etc/latch/latch.env, mode 0600); then: systemctl daemon-reload && "
                 "systemctl enable --now latch")
endif()

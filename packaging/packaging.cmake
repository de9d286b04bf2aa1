# Debian packages: `cmake --build BUILD --target package` writes
# drawbridge-enforcer_<version>_amd64.deb and drawbridge-controller_<version>_amd64.deb into BUILD.
# One CPack component per package; what each holds, and why, is in packaging/README.md.
# Configure with -DCMAKE_INSTALL_PREFIX=/usr for packages (GNUInstallDirs then puts the config in
# /etc); a plain `cmake --install` to /usr/local installs the same files under that prefix.

set(DRAWBRIDGE_PACKAGING_DIR ${CMAKE_CURRENT_LIST_DIR})

# systemd units: Debian 12 keeps packaged units in /lib/systemd/system.
if(CMAKE_INSTALL_PREFIX STREQUAL "/usr")
  set(DRAWBRIDGE_UNIT_DIR /lib/systemd/system)
else()
  set(DRAWBRIDGE_UNIT_DIR ${CMAKE_INSTALL_PREFIX}/lib/systemd/system)
endif()

foreach(component enforcer controller)
  set(pkg drawbridge-${component})
  install(FILES ${DRAWBRIDGE_PACKAGING_DIR}/systemd/${pkg}.service
          DESTINATION ${DRAWBRIDGE_UNIT_DIR} COMPONENT ${component})
  # Commented examples; conffiles (packaging/debian/*/conffiles), so upgrades keep local edits.
  install(FILES ${DRAWBRIDGE_PACKAGING_DIR}/etc/${component}.toml
          DESTINATION ${CMAKE_INSTALL_FULL_SYSCONFDIR}/drawbridge COMPONENT ${component})
  install(FILES ${DRAWBRIDGE_PACKAGING_DIR}/copyright ${PROJECT_SOURCE_DIR}/README.md
                ${PROJECT_SOURCE_DIR}/docs/deployment.md ${PROJECT_SOURCE_DIR}/docs/configuration.md
                ${PROJECT_SOURCE_DIR}/docs/signing.md ${PROJECT_SOURCE_DIR}/docs/distribution.md
          DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/${pkg} COMPONENT ${component})
endforeach()
install(FILES ${PROJECT_SOURCE_DIR}/docs/events.md ${PROJECT_SOURCE_DIR}/docs/soc-delivery.md
              ${PROJECT_SOURCE_DIR}/docs/audit-log.md ${PROJECT_SOURCE_DIR}/docs/ruleset.md
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/drawbridge-enforcer COMPONENT enforcer)
# The policy reference, beside the top-level README rather than over it.
install(FILES ${PROJECT_SOURCE_DIR}/policies/README.md RENAME policies.md
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/drawbridge-enforcer COMPONENT enforcer)
install(FILES ${PROJECT_SOURCE_DIR}/policies/clinic-east.toml
        DESTINATION ${CMAKE_INSTALL_DATAROOTDIR}/doc/drawbridge-enforcer/examples COMPONENT enforcer)

# Man pages from each command's --help (help2man), so they cannot drift from the binaries.
find_program(HELP2MAN help2man)
if(HELP2MAN)
  set(man_dir ${CMAKE_CURRENT_BINARY_DIR}/man)
  add_custom_command(
    OUTPUT ${man_dir}/drawbridge-enforcer.8.gz
    COMMAND ${DRAWBRIDGE_PACKAGING_DIR}/make-manpage.sh $<TARGET_FILE:drawbridge-enforcer> 8
            "limit an MSP's remote access to approved windows with nftables"
            ${man_dir}/drawbridge-enforcer.8.gz
    DEPENDS drawbridge-enforcer ${DRAWBRIDGE_PACKAGING_DIR}/make-manpage.sh
            ${DRAWBRIDGE_PACKAGING_DIR}/man/drawbridge-enforcer.h2m
    VERBATIM)
  add_custom_command(
    OUTPUT ${man_dir}/drawbridge-controller.8.gz
    COMMAND ${DRAWBRIDGE_PACKAGING_DIR}/make-manpage.sh $<TARGET_FILE:drawbridge-controller> 8
            "sign Drawbridge policies and distribute them to enforcers"
            ${man_dir}/drawbridge-controller.8.gz
    DEPENDS drawbridge-controller ${DRAWBRIDGE_PACKAGING_DIR}/make-manpage.sh
            ${DRAWBRIDGE_PACKAGING_DIR}/man/drawbridge-controller.h2m
    VERBATIM)
  add_custom_target(man ALL DEPENDS ${man_dir}/drawbridge-enforcer.8.gz
                                    ${man_dir}/drawbridge-controller.8.gz)
  install(FILES ${man_dir}/drawbridge-enforcer.8.gz
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT enforcer)
  install(FILES ${man_dir}/drawbridge-controller.8.gz
          DESTINATION ${CMAKE_INSTALL_MANDIR}/man8 COMPONENT controller)
else()
  message(STATUS "help2man not found: no man pages (apt install help2man)")
endif()

set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME drawbridge)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_VENDOR "Drawbridge")
set(CPACK_PACKAGE_CONTACT "Drawbridge maintainers <drawbridge@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Keep your MSP's remote access on a short leash")
set(CPACK_PACKAGE_DIRECTORY ${CMAKE_BINARY_DIR})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL enforcer controller)
# <name>_<version>_<arch>.deb: no Debian revision is set, so none appears in the name.
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SECTION net)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
# dpkg-shlibdeps finds the shared libraries (libnftnl11, libmnl0, libzmq5, libsodium23, libssl3,
# libsqlite3-0, libsystemd0, libspdlog, libfmt …); what is read at run time but not linked is
# listed by hand: the time zone database (date-tz reads /usr/share/zoneinfo).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_ENFORCER_PACKAGE_NAME drawbridge-enforcer)
# procps: /bin/kill for the units' ExecReload.
set(CPACK_DEBIAN_ENFORCER_PACKAGE_DEPENDS "tzdata, procps")
# nft(8) is not needed: the enforcer speaks netlink itself. It helps to look at the table.
set(CPACK_DEBIAN_ENFORCER_PACKAGE_SUGGESTS "nftables")
set(CPACK_COMPONENT_ENFORCER_DESCRIPTION
    "Drawbridge enforcer for an edge gateway\n\
Programs an nftables table so that a managed service provider's remote access (RDP, SSH, VNC,\n\
RMM tunnels) passes only from approved addresses, to approved hosts and ports, inside approved\n\
time windows or one-off grants; everything else is dropped and reported to the SOC. Windows close\n\
in the kernel, so access ends on time even if the daemon stops. Takes signed policy bundles\n\
from a drawbridge-controller, checked against a local trust file and the customer's ceiling.")
set(CPACK_DEBIAN_ENFORCER_PACKAGE_CONTROL_EXTRA
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/enforcer/conffiles
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/enforcer/postinst
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/enforcer/prerm
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/enforcer/postrm)

set(CPACK_DEBIAN_CONTROLLER_PACKAGE_NAME drawbridge-controller)
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_DEPENDS "tzdata, passwd, procps")
set(CPACK_COMPONENT_CONTROLLER_DESCRIPTION
    "Drawbridge controller for the managed service provider\n\
Makes signing keys, signs Drawbridge policies into bundles (the customer may co-sign), and serves\n\
them to the enforcers of its fleet over ZeroMQ with CURVE; keeps fleet state and the SOC events\n\
the enforcers send upstream in SQLite.")
set(CPACK_DEBIAN_CONTROLLER_PACKAGE_CONTROL_EXTRA
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/controller/conffiles
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/controller/postinst
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/controller/prerm
    ${DRAWBRIDGE_PACKAGING_DIR}/debian/controller/postrm)

include(CPack)

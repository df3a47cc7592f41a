// Device-side times for the timeline. A GPU runs queued work later than the host queues it, so a
// span measured on the host says when work was launched, not when it ran. A DeviceClock puts
// marks into one device stream, behind the work queued so far, and later tells on the host's
// clock when the device reached each mark -- without waiting for it: a mark the device has not
// reached yet is simply not ready, and is asked again later.
#pragma once

namespace distnet {

class DeviceClock {
 public:
  virtual ~DeviceClock() = default;
  // Puts a mark into the stream behind the work queued so far; returns its id, or -1 when every
  // mark is still in use (the caller then records nothing).
  virtual int mark() = 0;
  // When the device has reached `id`: sets *us to that moment on Timeline::now_us()'s clock and
  // returns true. Returns false, at once, when it has not reached it yet.
  virtual bool read(int id, double* us) = 0;
  // The mark is no longer needed (read or not); its id may be handed out again.
  virtual void release(int id) = 0;
};

}  // namespace distnet

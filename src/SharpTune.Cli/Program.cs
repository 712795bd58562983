using System.Runtime.InteropServices;

namespace SharpTune.Cli;

public static class Program
{
    public static int Main(string[] args)
    {
        PassiveOpenMpWaiting();
        return SharpTuneCli.Run(args);
    }

    /// <summary>
    /// libgomp (libtorch's OpenMP) spins its idle threads for a while after every parallel region. Decoding runs
    /// thousands of tiny regions, so on a small or busy machine the spinning threads steal the cores the work needs
    /// (2 threads decoding slower than 1). Passive waiting costs large ops nothing measurable. libgomp reads its
    /// settings once, when libtorch loads (on the first torch call, after this), and from the C environment, which
    /// .NET's Environment.SetEnvironmentVariable does not write on Unix, hence setenv. A user's own setting wins.
    /// </summary>
    private static void PassiveOpenMpWaiting()
    {
        if (OperatingSystem.IsWindows() || Environment.GetEnvironmentVariable("OMP_WAIT_POLICY") is not null
            || Environment.GetEnvironmentVariable("GOMP_SPINCOUNT") is not null)
            return;
        try
        {
            SetEnvironment("OMP_WAIT_POLICY", "PASSIVE", 0);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // Not glibc/musl: keep libgomp's defaults.
        }
    }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnvironment([MarshalAs(UnmanagedType.LPUTF8Str)] string name, [MarshalAs(UnmanagedType.LPUTF8Str)] string value, int overwrite);
}

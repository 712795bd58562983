using System.Diagnostics;
using System.Text.Json;

namespace SharpTune.Bench;

/// <summary>Runs the Python reference (PyTorch, transformers, tokenizers, scikit-learn) in the same run,
/// when the machine has it. The script prints one JSON object on its last line.</summary>
public static class PythonPeer
{
    public static JsonElement? TryRun(string script, TimeSpan? timeout = null, string python = "python3")
    {
        var start = new ProcessStartInfo(python)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add("-");
        try
        {
            using var process = Process.Start(start)!;
            process.StandardInput.Write(script);
            process.StandardInput.Close();
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(10)))
            {
                process.Kill(entireProcessTree: true);
                return null;
            }
            if (process.ExitCode != 0)
            {
                var reason = stderr.Result.Trim().Split('\n').LastOrDefault() ?? "";
                Console.Error.WriteLine($"  (python peer unavailable: {reason})");
                return null;
            }
            var last = stdout.Result.Trim().Split('\n').Last();
            return JsonDocument.Parse(last).RootElement.Clone();
        }
        catch (System.ComponentModel.Win32Exception)
        {
            Console.Error.WriteLine("  (python peer unavailable: python3 not found)");
            return null;
        }
    }
}

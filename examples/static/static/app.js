document.getElementById("status").textContent = "The script has run.";
